"""Passkey-confirmed signature with a server-held key (issue 20) in a real browser: Debian's chromium with a
virtual WebAuthn authenticator (CDP ``WebAuthn.addVirtualAuthenticator``, internal, user-verifying), against a
real ``parafe serve`` whose signing keys live in a SoftHSM2 token (``parafe admin server-key add``).

- the signer enrols a passkey on « Mes clés d'accès » and signs two PDFs at once from a phone-sized viewport;
  ``pdfsig`` validates both, the signing certificate is the server-held one and names the signer; the history
  records the authenticator's credential id;
- an assertion made for other digests, a replayed assertion and an assertion of a passkey the administrator
  revoked are refused with the catalogue's French messages (280, 281, 282) and sign nothing.

The browser is on ``https://localhost:<port>`` (a WebAuthn relying party id must be a host name, not an IP).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.config import Settings
from parafe.context import AppContext
from parafe.db.models import Document, HistoryEntry, Passkey, ServerKey
from parafe.services import steps as workflow
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import ADMIN, SIGNER, VISA
from parafe.services.signers import passkeys
from tests.conftest import ROOT, Home, LiveServer, start_server, stop_server
from tests.portal.conftest import PHONE, PIN, SOFTHSM_LIB, TOKEN, Browsing, both_widths, screenshot
from tests.portal.test_portal_security import deposit, wait_state

pytestmark = pytest.mark.slow

AUTHENTICATOR = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                 "hasUserVerification": True, "isUserVerified": True}


def _key_env(softhsm_env: dict[str, str], pin_file: Path) -> dict[str, str]:
    return {**softhsm_env, "PARAFE_SERVER_KEYS_PKCS11_LIB": SOFTHSM_LIB, "PARAFE_SERVER_KEYS_TOKEN": TOKEN,
            "PARAFE_SERVER_KEYS_PIN_FILE": str(pin_file)}


@pytest.fixture(scope="module")
def key_env(softhsm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    pin_file = tmp_path_factory.mktemp("server-keys") / "pin"
    pin_file.write_text(PIN)
    return _key_env(softhsm_env, pin_file)


@pytest.fixture(scope="module")
def portal_server(portal_home: Home, key_env: dict[str, str]) -> Iterator[LiveServer]:
    """The module's server, with server-held keys in the SoftHSM2 token, browsed as ``localhost``."""
    server = start_server(portal_home, {"PARAFE_PORTAL_SECRET": "s" * 48, **key_env})
    try:
        yield dataclasses.replace(server, url=server.url.replace("://127.0.0.1:", "://localhost:"))
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def ctx(portal_server: LiveServer, key_env: dict[str, str]) -> Iterator[AppContext]:
    home = portal_server.home
    context = AppContext.from_settings(Settings(home=home.path, database_url=home.database_url))
    yield context
    context.close()


@pytest.fixture(scope="module")
def server_key(portal_server: LiveServer, key_env: dict[str, str]) -> str:
    """The signer's server-held key, made by the operator's command; returns its certificate fingerprint."""
    env = {**portal_server.home.env(), **key_env}
    done = subprocess.run([sys.executable, "-m", "parafe", "admin", "server-key", "add", "--email", SIGNER],
                          cwd=str(ROOT), env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    match = re.search(r"SHA-256 ([0-9a-f]{64})", done.stdout)
    assert match, done.stdout
    assert "Sophie Signataire" in done.stdout, done.stdout
    return match.group(1)


def to_sign(server: LiveServer, ctx: AppContext, name: str) -> int:
    """A PDF of the demo ``bureautique`` circuit, deposited over REST and approved by the valideur."""
    doc_id = deposit(server, name)
    wait_state(server, doc_id, "Envoyé pour visa")
    workflow.approve_visa(ctx, principal_for_email(ctx, VISA), doc_id)
    wait_state(server, doc_id, "Envoyé pour signature")
    return doc_id


def with_authenticator(page: Any) -> str:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    return str(cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})["authenticatorId"])


def enrol(page: Any, browsing: Browsing, name: str) -> None:
    page.goto(browsing.url("/cles-d-acces"))
    page.get_by_label("Nom de la clé (pour la reconnaître)").fill(name)
    page.get_by_role("button", name="Enregistrer une clé d'accès").click()
    page.wait_for_url(re.compile(r"/cles-d-acces\?ok=cle$"))
    assert page.get_by_role("status").first.inner_text() == "Clé d'accès enregistrée."
    assert f"{name} — active" in page.locator("#titre-cles + ul").inner_text()


def signed_pdf(ctx: AppContext, doc_id: int) -> bytes:
    with ctx.db.read() as session:
        document = session.get(Document, doc_id)
        assert document is not None
        assert document.signed_blob_sha256
        return ctx.store.read_bytes(document.signed_blob_sha256)


def test_enrol_a_passkey_and_sign_two_documents_from_a_phone(
        browsing: Browsing, ctx: AppContext, server_key: str, tmp_path: Path) -> None:
    first = to_sign(browsing.server, ctx, "deliberation-passkey-1.pdf")
    second = to_sign(browsing.server, ctx, "deliberation-passkey-2.pdf")
    page = browsing.page(SIGNER, viewport=PHONE)
    with_authenticator(page)
    page.goto(browsing.url("/cles-d-acces"))
    screenshot(page, "cles-d-acces-vide")
    enrol(page, browsing, "Téléphone de Sophie")
    screenshot(page, "cles-d-acces")

    page.goto(browsing.url(f"/signature?ids={first},{second}"))
    screenshot(page, "signature-cle-d-acces-avant")
    page.get_by_role("button", name="Signer 2 documents avec ma clé d'accès").click()
    page.get_by_text("2 document(s) signé(s) sur 2.").wait_for(timeout=60_000)
    assert page.locator("#titre-lot").inner_text() == "2 documents signés"  # no longer « 2 documents à signer »
    assert page.locator("#titre-assistant").is_hidden()  # nothing left for the local helper
    screenshot(page, "signature-cle-d-acces")
    results = page.locator("#passkey-results").inner_text()
    assert "deliberation-passkey-1.pdf : signé." in results
    assert "deliberation-passkey-2.pdf : signé." in results

    if shutil.which("pdfsig") is None:
        pytest.fail("pdfsig (poppler-utils) is required to check the signed PDFs")
    from pyhanko.pdf_utils.reader import PdfFileReader

    with ctx.db.read() as session:
        (credential_id,) = session.scalars(select(Passkey.credential_id).join(ServerKey, ServerKey.user_id ==
                                                                              Passkey.user_id)).all()
    for doc_id in (first, second):
        data = signed_pdf(ctx, doc_id)
        path = tmp_path / f"{doc_id}.pdf"
        path.write_bytes(data)
        out = subprocess.run(["pdfsig", "-nocert", str(path)], capture_output=True, text=True, check=False).stdout
        assert "Signature Validation: Signature is Valid." in out, out
        assert "Signer Certificate Common Name: Sophie Signataire" in out, out
        (embedded,) = PdfFileReader(io.BytesIO(data)).embedded_signatures
        cert = embedded.signer_cert
        assert hashlib.sha256(cert.dump()).hexdigest() == server_key  # the server-held key signed
        assert cert.subject.native["email_address"] == SIGNER
        with ctx.db.read() as session:
            comments = [e.comment or "" for e in session.scalars(
                select(HistoryEntry).where(HistoryEntry.document_id == doc_id, HistoryEntry.state.is_(None)))]
            state = session.scalar(select(Document.state).where(Document.id == doc_id))
        assert state not in ("sent_for_sign", None), state
        assert any(credential_id in c and "Téléphone de Sophie" in c for c in comments), comments


ASSERT_JS = """
async ([ids, csrf]) => {
  const dec = (t) => Uint8Array.from(atob(t.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((t.length + 3) % 4)),
                                     (c) => c.charCodeAt(0)).buffer;
  const enc = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\\+/g, '-').replace(/\\//g, '_')
                                                                    .replace(/=+$/, '');
  const post = async (body) => {
    const r = await fetch('/signature/cle/preparer', {method: 'POST', headers: {'Content-Type': 'application/json',
      'X-CSRF-Token': csrf}, body: JSON.stringify(body)});
    return r.json();
  };
  const assertion = async (prep) => {
    const o = prep.options;
    const a = await navigator.credentials.get({publicKey: {...o, challenge: dec(o.challenge),
      allowCredentials: o.allowCredentials.map((c) => ({...c, id: dec(c.id)}))}});
    return {id: a.id, rawId: enc(a.rawId), type: a.type, clientExtensionResults: {},
            response: {clientDataJSON: enc(a.response.clientDataJSON),
                       authenticatorData: enc(a.response.authenticatorData),
                       signature: enc(a.response.signature),
                       userHandle: a.response.userHandle ? enc(a.response.userHandle) : undefined}};
  };
  const A = await post({ids: [ids[0]]});
  const B = await post({ids: [ids[0]]});
  const C = await post({ids: [ids[1]]});
  return {A: A.session, B: B.session, C: C.session, a: await assertion(A), c: await assertion(C)};
}
"""

FINISH_JS = """
async ([session, credential, csrf]) => {
  const r = await fetch('/signature/cle/finaliser', {method: 'POST', headers: {'Content-Type': 'application/json',
    'X-CSRF-Token': csrf}, body: JSON.stringify({session, credential})});
  return {status: r.status, body: await r.json()};
}
"""


def test_other_digests_replay_and_revoked_passkey_are_refused(
        browsing: Browsing, ctx: AppContext, server_key: str) -> None:
    doc_a = to_sign(browsing.server, ctx, "refus-passkey-a.pdf")
    doc_c = to_sign(browsing.server, ctx, "refus-passkey-c.pdf")
    page = browsing.page(SIGNER)
    with_authenticator(page)
    enrol(page, browsing, "Ordinateur du bureau")
    screenshot(page, "cles-d-acces")
    page.goto(browsing.url(f"/signature?ids={doc_a}"))
    screenshot(page, "signature-cle-d-acces-avant")
    csrf = page.locator("#passkey-sign").get_attribute("data-csrf")
    got = page.evaluate(ASSERT_JS, [[doc_a, doc_c], csrf])

    def finish(session: str, credential: dict[str, Any]) -> dict[str, Any]:
        return dict(page.evaluate(FINISH_JS, [session, credential, csrf]))

    # an assertion made for session A's digests does not confirm session B (same document, other preparation)
    other = finish(got["B"], got["a"])
    assert other["status"] == 403, other
    assert other["body"]["errorCode"] == 280, other
    assert other["body"]["message"].startswith("Confirmation par clé d'accès refusée")
    assert signed(ctx, doc_a) is False
    # the right session: signed; the same assertion again: refused
    ok = finish(got["A"], got["a"])
    assert ok["status"] == 200, ok
    assert ok["body"]["results"][0]["ok"] is True, ok
    replay = finish(got["A"], got["a"])
    assert replay["status"] == 409, replay
    assert replay["body"]["errorCode"] == 281, replay

    # the administrator revokes the passkey: its assertion (made before) no longer signs
    admin = browsing.page(ADMIN)
    admin.goto(browsing.url(f"/admin/123456789/utilisateurs/{SIGNER}"))
    assert "CN=Sophie Signataire" in admin.locator("#titre-cles-acces + p").inner_text()  # the server-held key
    both_widths(admin, "admin-cles-d-acces")
    admin.get_by_role("button", name="Révoquer la clé d'accès Ordinateur du bureau").click()
    admin.wait_for_url(re.compile(r"\?ok=enregistre$"))
    assert "Ordinateur du bureau — révoquée" in admin.locator("#titre-cles-acces ~ ul").inner_text()
    revoked = finish(got["C"], got["c"])
    assert revoked["status"] == 403, revoked
    assert revoked["body"]["errorCode"] == 282, revoked
    assert signed(ctx, doc_c) is False
    page.goto(browsing.url("/cles-d-acces"))
    assert "Ordinateur du bureau — révoquée" in page.locator("#titre-cles + ul").inner_text()


def signed(ctx: AppContext, doc_id: int) -> bool:
    with ctx.db.read() as session:
        document = session.get(Document, doc_id)
        return bool(document is not None and document.signed_blob_sha256)


def test_launch_the_helper_from_the_signing_page(browsing: Browsing, ctx: AppContext, softhsm_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    """The helper does not answer: the page offers « Lancer l'assistant »; its ``parafe-signer://`` link, given to
    the installed URL handler (``parafe-signer open-url``, as the desktop would), starts the helper and the
    signature goes on by itself."""
    from urllib.parse import quote

    from tests.portal.conftest import KEY_LABEL, free_port

    doc = to_sign(browsing.server, ctx, "lancement-assistant.pdf")
    port = free_port()
    user_env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PARAFE_"))}
    user_env.update(HOME=str(tmp_path / "home"), **softhsm_env, PARAFE_SIGNER_PIN=PIN)
    installed = subprocess.run(
        [sys.executable, "-m", "parafe.signer", "install", "--origin", browsing.server.url, "--port", str(port),
         "--pkcs11-lib", SOFTHSM_LIB, "--token-label", TOKEN, "--key-label", KEY_LABEL,
         "--pin-env", "PARAFE_SIGNER_PIN"], cwd=str(ROOT), env=user_env, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr

    page = browsing.page(SIGNER)
    page.goto(browsing.url(f"/signature?ids={doc}"))
    assert page.locator("#signer-launch").is_hidden()
    page.get_by_label("Port de l'assistant sur ce poste").fill(str(port))
    page.get_by_label("Port de l'assistant sur ce poste").dispatch_event("change")
    with page.expect_popup() as popup_info:
        page.get_by_role("button", name="Signer 1 document", exact=True).click()
    launch = page.get_by_role("link", name="Lancer l'assistant")
    launch.wait_for()
    href = launch.get_attribute("href")
    assert href == f"parafe-signer://start?origin={quote(browsing.server.url, safe='')}&port={port}"
    assert "cliquez sur « Lancer l'assistant »" in page.locator("#signer-status").inner_text()
    screenshot(page, "signature-lancer-assistant")
    page.set_viewport_size(PHONE)
    screenshot(page, "signature-lancer-assistant")
    log = tmp_path / "helper.log"
    with open(log, "wb") as fh:
        helper = subprocess.Popen([sys.executable, "-m", "parafe.signer", "open-url", str(href)], cwd=str(ROOT),
                                  env=user_env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        popup = popup_info.value
        popup.wait_for_url(re.compile(rf"http://127\.0\.0\.1:{port}/confirmer/"), timeout=60_000)
        popup.get_by_role("button", name="Signer 1 document(s)").click()
        page.get_by_text("1 document(s) signé(s) sur 1.").wait_for(timeout=60_000)
        assert page.locator("#signer-launch").is_hidden()
        assert signed(ctx, doc)
    finally:
        helper.terminate()
        helper.wait(timeout=10)
    assert "Demande de signature de" in log.read_text()


def test_a_passkey_enrolled_after_a_password_login_waits_for_an_administrator(
        browsing: Browsing, ctx: AppContext) -> None:
    """A stolen password alone must not lead to a signature: the passkey it enrols is inactive until an
    administrator (here by certificate) validates it."""
    password = (browsing.server.home.path / "demo" / "admin-password.txt").read_text().strip()
    page = browsing.page(basic=(ADMIN, password))
    with_authenticator(page)
    page.goto(browsing.url("/connexion"))  # the Basic challenge: the browser then sends the password
    page.wait_for_url(re.compile(r"/admin/"))
    page.goto(browsing.url("/cles-d-acces"))
    assert "ne servira qu'après sa validation par votre administrateur" in page.locator("main").inner_text()
    page.get_by_label("Nom de la clé (pour la reconnaître)").fill("Clé par mot de passe")
    page.get_by_role("button", name="Enregistrer une clé d'accès").click()
    page.wait_for_url(re.compile(r"/cles-d-acces\?ok=cle$"))
    listed = page.locator("#titre-cles + ul").inner_text()
    assert "Clé par mot de passe — en attente de validation par votre administrateur" in listed
    admin_principal = principal_for_email(ctx, ADMIN)
    assert passkeys.can_sign(ctx, admin_principal)[1] == 0  # not usable for a signature

    validator = browsing.page(ADMIN)  # by certificate
    validator.goto(browsing.url(f"/admin/123456789/utilisateurs/{ADMIN}"))
    assert "Clé par mot de passe — en attente de validation" in validator.locator("#titre-cles-acces ~ ul").inner_text()
    screenshot(validator, "admin-cle-d-acces-a-valider")
    validator.get_by_role("button", name="Valider la clé d'accès Clé par mot de passe").click()
    validator.wait_for_url(re.compile(r"\?ok=enregistre$"))
    assert "Clé par mot de passe — active" in validator.locator("#titre-cles-acces ~ ul").inner_text()
    assert passkeys.can_sign(ctx, admin_principal)[1] == 1
