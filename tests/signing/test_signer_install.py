"""``parafe-signer install`` / ``open-url`` / ``uninstall`` (issue 20 point 2) with ``HOME`` in a temporary
directory: the desktop entry, the ``parafe-signer://`` association and the autostart entry are written and valid
(``desktop-file-validate`` from desktop-file-utils), opening ``parafe-signer://start?origin=…`` with ``xdg-open``
(generic mode: it runs the registered desktop entry's ``Exec``) starts the helper for that origin, a link for an
origin that was not installed starts nothing, and ``uninstall`` removes everything."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from parafe.services.demo import SIGNER
from tests.conftest import ROOT

ORIGIN = "https://parapheur.exemple.fr"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def user_env(tmp_path: Path, pki_template: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "password").write_text("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PARAFE_"))}
    env.update(HOME=str(home), DISPLAY=":99")  # xdg-open only looks for a display variable
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parafe.signer", *args], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, check=False, timeout=60)


def wait_for_helper(port: int, seconds: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while True:
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/v1/certificat", headers={"Origin": ORIGIN}, timeout=2)
            return {"status": answer.status_code, "body": answer.json(),
                    "cors": answer.headers.get("access-control-allow-origin")}
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise AssertionError(f"no helper on port {port}") from None
            time.sleep(0.2)


def test_install_open_url_and_uninstall(user_env: dict[str, str], tmp_path: Path, pki_template: Path) -> None:
    home = Path(user_env["HOME"])
    port = free_port()
    p12 = pki_template / "demo" / f"{SIGNER}.p12"
    done = run(user_env, "install", "--p12", str(p12), "--password-file", str(tmp_path / "password"),
               "--origin", ORIGIN + "/", "--port", str(port))
    assert done.returncode == 0, done.stderr
    desktop = home / ".local" / "share" / "applications" / "parafe-signer.desktop"
    autostart = home / ".config" / "autostart" / "parafe-signer.desktop"
    config = home / ".config" / "parafe-signer" / "config.json"
    entry = desktop.read_text()
    assert "MimeType=x-scheme-handler/parafe-signer;\n" in entry
    assert entry.splitlines()[4].endswith(" open-url %u")
    assert "Terminal=false" in entry
    assert autostart.read_text().splitlines()[4].endswith(" start")
    settings = json.loads(config.read_text())
    assert settings["origins"] == [ORIGIN]
    assert settings["port"] == port
    assert settings["p12"] == str(p12)
    assert "demo" not in config.read_text().replace(str(p12), "")  # the password itself is not stored
    assert (config.stat().st_mode & 0o777) == 0o600
    if shutil.which("desktop-file-validate") is None:
        pytest.fail("desktop-file-validate (desktop-file-utils) is required")
    check = subprocess.run(["desktop-file-validate", str(desktop), str(autostart)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    assert check.stdout == "", check.stdout
    if shutil.which("xdg-mime") is None or shutil.which("xdg-open") is None:
        pytest.fail("xdg-utils (xdg-mime, xdg-open) is required")
    query = subprocess.run(["xdg-mime", "query", "default", "x-scheme-handler/parafe-signer"], env=user_env,
                           capture_output=True, text=True)
    assert query.stdout.strip() == "parafe-signer.desktop"

    # a link for another site starts nothing
    foreign = run(user_env, "open-url", f"parafe-signer://start?origin={quote('https://evil.example', safe='')}")
    assert foreign.returncode != 0
    assert "n'est pas autorisé sur ce poste" in foreign.stderr
    with pytest.raises(AssertionError):
        wait_for_helper(port, seconds=1)

    # the portal's « Lancer l'assistant » link, opened the way the desktop opens it
    url = f"parafe-signer://start?origin={quote(ORIGIN, safe='')}&port={port}"
    log = tmp_path / "xdg-open.log"
    with open(log, "wb") as fh:
        opener = subprocess.Popen(["xdg-open", url], env=user_env, stdout=fh, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        answer = wait_for_helper(port)
        assert answer["status"] == 200, answer
        assert answer["cors"] == ORIGIN, answer
        assert answer["body"]["name"] == "Sophie Signataire"  # type: ignore[index]
        # a second click while it runs: the helper already answers, nothing else starts
        again = run(user_env, "open-url", url)
        assert again.returncode == 0
        assert "répond déjà" in again.stdout
    finally:
        os.killpg(opener.pid, 15)
        opener.wait(timeout=10)

    gone = run(user_env, "uninstall")
    assert gone.returncode == 0, gone.stderr
    assert not desktop.exists()
    assert not autostart.exists()
    assert not config.exists()
    assert "parafe-signer" not in (home / ".config" / "mimeapps.list").read_text()
