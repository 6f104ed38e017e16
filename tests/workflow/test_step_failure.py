"""Broken steps fail loudly (issue 18 point 2): a job that fails for good puts its document in « Échec du
traitement », visible in the history (REST, SOAP), in the portal, with a mail to the depositor through a real SMTP
server; a subscriber administrator (portal button) or the operator (``parafe admin document retry``) retries it
once the cause is fixed, and the document reaches « Signé ».

The failure is real: the server signature key (``PARAFE_SERVER_SIGNING_P12``) is a file that is not a PKCS#12;
"fixed" means a valid key is written at that path.
"""

from __future__ import annotations

import html
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from parafe.security import pki
from parafe.services.demo import ADMIN, AGENT
from tests.api.soap.soaputil import envelope
from tests.conftest import ROOT, Home, LiveServer, free_port, start_server, stop_server
from tests.fixtures.files import pdf_bytes
from tests.portal.test_portal_security import csrf_of
from tests.workflow.test_mails import Inbox

REST = "/parapheur-ws/rest/v1/documents/v2"
FAILED = "Échec du traitement"


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    box.port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def failing_server(home: Home, inbox: Inbox, tmp_path: Path) -> Iterator[tuple[LiveServer, Path]]:
    key = tmp_path / "server-signing.p12"
    key.write_bytes(b"ceci n'est pas un PKCS#12")
    server = start_server(home, {
        "PARAFE_SERVER_SIGNING_P12": str(key), "PARAFE_JOB_MAX_ATTEMPTS": "2", "PARAFE_JOB_BACKOFF_SECONDS": "0.2",
        "PARAFE_SMTP_HOST": "127.0.0.1", "PARAFE_SMTP_PORT": str(inbox.port),
        "PARAFE_MAIL_FROM": "Parafe <parapheur@demo.parafe.test>"})
    try:
        yield server, key
    finally:
        stop_server(server)


def _states(c: httpx.Client, doc_id: int) -> list[str]:
    r = c.get(f"{REST}/{doc_id}/history")
    assert r.status_code == 200, r.text
    return [entry["stateName"] for entry in r.json()]


def _wait(c: httpx.Client, doc_id: int, wanted: str, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        states = _states(c, doc_id)
        if states and states[-1] == wanted:
            return states
        assert time.monotonic() < deadline, f"{doc_id}: {states}, never {wanted}"
        time.sleep(0.2)


def _deposit(c: httpx.Client, name: str) -> int:
    r = c.post(f"{REST}/123456789/serveur/upload", files={"content": (name, pdf_bytes(2, name), "application/pdf")})
    assert r.status_code == 200, r.text
    return int(r.text)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_step_failing_for_good_then_retried(failing_server: tuple[LiveServer, Path], inbox: Inbox) -> None:
    server, key = failing_server
    home = server.home
    with server.client(AGENT) as agent:
        first, second = _deposit(agent, "contrat.pdf"), _deposit(agent, "avenant.pdf")
        states = _wait(agent, first, FAILED)
        assert states == ["Préparé", "Envoyé pour signature", FAILED]
        _wait(agent, second, FAILED)
        # the history entry says what failed and why
        detail = agent.get(f"/documents/{first}").text
        assert "La signature serveur a échoué après 2 essais" in detail
        assert "Relancer le traitement" not in detail  # the agent is not the subscriber's administrator
        # SOAP history shows the same state
        soap = agent.post("/parapheur-soap/soap/v1/Documents", content=envelope(
            "history", f"<documentId>{first}</documentId>"), headers={"Content-Type": "text/xml; charset=utf-8"})
        assert soap.status_code == 200, soap.text[:1000]
        assert f"<stateName>{FAILED}</stateName>" in soap.text, soap.text[:1000]
    # the depositor's mail
    inbox.wait(2, timeout=20)
    mails = [m for m in inbox.to(AGENT) if str(m["Subject"]).startswith("Échec du traitement")]
    assert {str(m["Subject"]) for m in mails} == {"Échec du traitement : contrat.pdf",
                                                   "Échec du traitement : avenant.pdf"}
    body = mails[0].get_content()
    assert "« Échec du traitement »" in body
    assert "La signature serveur a échoué" in body

    # fix the cause: a valid signing key at the configured path
    ca = pki.load_ca(home.path / "pki")
    leaf = pki.issue_user_cert(ca, "signature-serveur@demo.parafe.test", "Parafe signature serveur",
                               organization="Parafe")
    pki.write_p12(leaf, key, b"parafe", ca, overwrite=True)

    # the subscriber's administrator retries from the portal
    with server.client(ADMIN) as admin:
        page = admin.get(f"/documents/{first}").text
        assert "Relancer le traitement" in page
        token = csrf_of(admin, f"/documents/{first}")
        r = admin.post(f"/documents/{first}/relancer", data={"csrf": token})
        assert r.status_code in (302, 303), r.text[:500]
        assert r.headers["location"].endswith("ok=relance")
        again = admin.post(f"/documents/{first}/relancer", data={"csrf": token})
        assert again.status_code == 409
        assert "n'est pas en erreur de traitement" in html.unescape(again.text)
    # the operator retries the other one from the command line
    cli = subprocess.run([sys.executable, "-m", "parafe", "admin", "document", "retry", str(second)],
                         cwd=str(ROOT), env=home.env(), capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert f"Document {second} relancé" in cli.stdout
    with server.client(AGENT) as agent:
        for doc_id in (first, second):
            states = _wait(agent, doc_id, "Classé")
            assert states == ["Préparé", "Envoyé pour signature", FAILED, "Envoyé pour signature", "Signé",
                              "Classé"], states
        signed = agent.get(f"{REST}/{first}/download")
        assert signed.status_code == 200
        assert b"/ByteRange" in signed.content
    cli = subprocess.run([sys.executable, "-m", "parafe", "admin", "document", "retry", str(first)],
                         cwd=str(ROOT), env=home.env(), capture_output=True, text=True)
    assert cli.returncode == 1
    assert "n'est pas en erreur de traitement" in cli.stderr
