"""Fixtures of the portal's browser tests: one real ``parafe serve`` (TLS, demo set) per test module, Debian's
chromium driven by Playwright with the demo users' client certificates, a SoftHSM2 token holding the demo
signer's key, and the screenshots written to ``docs/screens/``.

Chromium comes from Debian (``/usr/bin/chromium``, never ``playwright install``). Without it (or without the
``playwright`` package) the browser tests are skipped locally with a reason, and FAIL in CI (``CI=true``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, ROOT, Home, LiveServer, start_server, stop_server

CHROMIUM = os.environ.get("PARAFE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
SCREENS = ROOT / "docs" / "screens"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
SOFTHSM_LIB = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN, PIN, KEY_LABEL = "parafe-portail", "4321", "signataire"
CSP_PROBE = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def playwright_browser() -> Iterator[Any]:
    """Debian's chromium under Playwright, per test module: Playwright's sync API keeps an asyncio loop running in
    the thread while it is started, so a session-wide instance would make every later test of the same xdist
    worker that calls ``asyncio.run`` (pyHanko's synchronous validation, for one) fail."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the 'playwright' package is not installed (pip install playwright==1.65.2)")
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def portal_home(pki_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A fresh SQLite home for the module's server (the server initialises the database and the demo set)."""
    path = tmp_path_factory.mktemp("portal") / "home"
    shutil.copytree(pki_template, path)
    return Home(path=path, backend="sqlite", database_url=f"sqlite:///{path / 'parafe.db'}")


@pytest.fixture(scope="module")
def portal_server(portal_home: Home) -> Iterator[LiveServer]:
    server = start_server(portal_home, {"PARAFE_PORTAL_SECRET": "s" * 48})
    try:
        yield server
    finally:
        stop_server(server)


@dataclass
class Browsing:
    """Opens browser contexts as a given demo user (client certificate), as an admin (Basic) or anonymously."""

    browser: Any
    server: LiveServer
    contexts: list[Any] = field(default_factory=list)
    pages: list[Any] = field(default_factory=list)

    def context(self, email: str | None = None, *, cert: tuple[str, str] | None = None,
                basic: tuple[str, str] | None = None, viewport: dict[str, int] | None = None,
                bypass_csp: bool = False) -> Any:
        """``bypass_csp``: the page's Content-Security-Policy is not enforced in this context only (the
        accessibility tests inject axe-core as an inline script)."""
        options: dict[str, Any] = {"ignore_https_errors": True, "locale": "fr-FR", "timezone_id": "Europe/Paris",
                                   "viewport": viewport or DESKTOP, "accept_downloads": True,
                                   "bypass_csp": bypass_csp}
        if email is not None:
            cert = self.server.home.demo(email)
        if cert is not None:
            options["client_certificates"] = [{"origin": self.server.url, "certPath": cert[0], "keyPath": cert[1]}]
        if basic is not None:
            options["http_credentials"] = {"username": basic[0], "password": basic[1], "origin": self.server.url}
        context = self.browser.new_context(**options)
        context.add_init_script(CSP_PROBE)
        context.set_default_timeout(30_000)
        self.contexts.append(context)
        return context

    def page(self, email: str | None = None, **kwargs: Any) -> Any:
        page = self.context(email, **kwargs).new_page()
        self.pages.append(page)
        return page

    def url(self, path: str) -> str:
        return self.server.url + path

    def violations(self) -> list[str]:
        found: list[str] = []
        for context in self.contexts:
            for page in context.pages:
                if page.is_closed() or not page.url.startswith(self.server.url):
                    continue
                try:
                    found += page.evaluate("window.__cspViolations || []")
                except Exception:  # a page navigating away
                    continue
        return found

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def browsing(playwright_browser: Any, portal_server: LiveServer) -> Iterator[Browsing]:
    session = Browsing(playwright_browser, portal_server)
    try:
        yield session
        assert session.violations() == [], "Content-Security-Policy violations in the portal pages"
    finally:
        session.close()


def _same_picture(old: Path, new: bytes, tolerance: float = 0.01) -> bool:
    """Whether ``new`` differs from the PNG at ``old`` only by a few pixels (dates, times, numbers), so that
    the committed screenshot is kept and only real changes of the pages show in the repository."""
    try:
        import io

        from PIL import Image, ImageChops
    except ImportError:
        return False
    if not old.exists():
        return False
    with Image.open(old) as before, Image.open(io.BytesIO(new)) as after:
        if before.size != after.size:
            return False
        diff = ImageChops.difference(before.convert("RGB"), after.convert("RGB")).convert("L")
        changed = sum(diff.point(lambda v: 255 if v > 24 else 0).histogram()[255:])
        return changed <= tolerance * before.size[0] * before.size[1]


def screenshot(page: Any, name: str, *, full_page: bool = True) -> None:
    """``docs/screens/<name>-<desktop|phone>.png`` at the page's current viewport (rewritten only when the page
    looks different, see :func:`_same_picture`)."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"] if page.viewport_size else DESKTOP["width"]
    suffix = "phone" if width < 600 else "desktop"
    target = SCREENS / f"{name}-{suffix}.png"
    data = page.screenshot(full_page=full_page)
    if not _same_picture(target, data):
        target.write_bytes(data)


A11Y_PROBE = """() => {
  const problems = [];
  if (document.documentElement.lang !== 'fr') problems.push('html lang is not fr');
  if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
  if (!document.querySelector('main')) problems.push('no main landmark');
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden' || el.closest('[hidden]')) continue;
    const named = (el.labels && el.labels.length) || el.getAttribute('aria-label')
      || el.getAttribute('aria-labelledby');
    if (!named) problems.push('unlabelled ' + el.tagName + ' ' + (el.name || el.id));
  }
  for (const el of document.querySelectorAll('img, canvas, svg')) {
    // not rendered (display: none), so not exposed: e.g. the text-measuring canvas pdf.js's TextLayer adds
    if (!el.getClientRects().length) continue;
    if (el.tagName === 'IMG' && !el.hasAttribute('alt')) problems.push('img without alt');
    if (el.tagName === 'CANVAS' && !el.getAttribute('aria-label')) problems.push('canvas without label');
  }
  for (const el of document.querySelectorAll('a, button')) {
    if (!el.textContent.trim() && !el.getAttribute('aria-label')) problems.push('unnamed ' + el.tagName);
  }
  return problems;
}"""


def check_accessibility(page: Any) -> None:
    """Structural accessibility of the current page: French, one h1, a main landmark, every form control
    labelled, named links and buttons, labelled images and canvases."""
    assert page.evaluate(A11Y_PROBE) == [], page.url


def both_widths(page: Any, name: str, prepare: Callable[[], None] | None = None) -> None:
    """Screenshots at desktop and phone widths (``prepare`` re-runs after the resize, e.g. to wait for a
    re-render); the page must pass :func:`check_accessibility` and, at phone width, not scroll sideways."""
    page.set_viewport_size(DESKTOP)
    if prepare:
        prepare()
    check_accessibility(page)
    screenshot(page, name)
    page.set_viewport_size(PHONE)
    if prepare:
        prepare()
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than a phone screen"
    screenshot(page, name)
    page.set_viewport_size(DESKTOP)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SignerHelper:
    port: int
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def softhsm_env(portal_home: Home, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A SoftHSM2 token holding the demo signer's key and certificate (imported with softhsm2-util and
    pkcs11-tool, as a user would for a real card)."""
    if not (Path(SOFTHSM_LIB).exists() and shutil.which("softhsm2-util") and shutil.which("pkcs11-tool")):
        _unavailable("softhsm2 and opensc (pkcs11-tool) are required for the signing-helper test")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from parafe.services.demo import SIGNER

    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    cert_pem, key_pem = (Path(p) for p in portal_home.demo(SIGNER))
    key = serialization.load_pem_private_key(key_pem.read_bytes(), None)
    pkcs8 = base / "signer.pk8.pem"
    pkcs8.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    der = base / "signer.der"
    der.write_bytes(x509.load_pem_x509_certificate(cert_pem.read_bytes()).public_bytes(serialization.Encoding.DER))

    def run(*cmd: str) -> None:
        subprocess.run(cmd, env=env, check=True, capture_output=True)

    run("softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", "87654321")
    run("softhsm2-util", "--import", str(pkcs8), "--token", TOKEN, "--label", KEY_LABEL, "--id", "01",
        "--pin", PIN)
    run("pkcs11-tool", "--module", SOFTHSM_LIB, "--token-label", TOKEN, "--login", "--pin", PIN,
        "--write-object", str(der), "--type", "cert", "--id", "01", "--label", KEY_LABEL)
    pkcs8.unlink()
    return {"SOFTHSM2_CONF": str(conf)}


@pytest.fixture(scope="module")
def signer_helper(portal_server: LiveServer, softhsm_env: dict[str, str],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignerHelper]:
    """``parafe-signer serve`` on a free port, signing with the SoftHSM2 token, for the portal's origin."""
    port = free_port()
    log = tmp_path_factory.mktemp("signer") / "signer.log"
    env = {**os.environ, **softhsm_env, "PARAFE_SIGNER_PIN": PIN}
    with open(log, "wb") as fh:
        process = subprocess.Popen(
            [sys.executable, "-m", "parafe.signer", "serve", "--port", str(port), "--origin", portal_server.url,
             "--pkcs11-lib", SOFTHSM_LIB, "--token-label", TOKEN, "--key-label", KEY_LABEL,
             "--pin-env", "PARAFE_SIGNER_PIN"], cwd=str(ROOT), env=env, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"parafe-signer exited: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"parafe-signer did not start: {log.read_text(errors='replace')}") from None
            time.sleep(0.2)
    try:
        yield SignerHelper(port, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
