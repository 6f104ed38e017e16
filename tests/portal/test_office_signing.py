"""The portal's signature of an office document (demo ``xml`` circuit, detached XAdES made with the signer's own
key through ``/signature/preparer`` and ``/signature/finaliser``) over real HTTP: the signature is verified before
the document becomes « Signé », and a refusal comes back in the portal's JSON with the catalogue's French message
(here, certificates an administrator bound to the signer's account although they are expired or from an unknown
CA: codes 234 and 233). SOAP and REST have no signing operation (FAST signs on the portal)."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from parafe.config import Settings
from parafe.context import AppContext
from parafe.domain.errors import E
from parafe.services.admin import platform as admin
from parafe.services.demo import AGENT, SIGNER
from parafe.signing.keys import ServerSigner, load_pem_signer, load_signer
from tests.conftest import LiveServer
from tests.portal.test_portal_security import csrf_of, wait_state

ODT = "application/vnd.oasis.opendocument.text"


@pytest.fixture(scope="module")
def ctx(portal_server: LiveServer) -> Iterator[AppContext]:
    home = portal_server.home
    context = AppContext.from_settings(Settings(home=home.path, database_url=home.database_url))
    yield context
    context.close()


def office_document(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        zf.writestr("content.xml", f"<office:document-content>{text}</office:document-content>")
    return buf.getvalue()


def deposit(server: LiveServer, name: str) -> int:
    with server.client(AGENT) as client:
        response = client.post("/parapheur-ws/rest/v1/documents/v2/123456789/xml/upload",
                               files={"content": (name, office_document(name), ODT)})
    assert response.status_code == 200, response.text
    doc_id = int(response.text)
    wait_state(server, doc_id, "Envoyé pour signature")
    return doc_id


def portal_sign(client: httpx.Client, doc_id: int, key: ServerSigner) -> dict[str, Any]:
    """What the signing helper does: prepare with the certificate, sign each request with the key, finish."""
    headers = {"X-CSRF-Token": csrf_of(client)}
    pem = key.certificate.public_bytes(serialization.Encoding.PEM).decode()
    prepared = client.post("/signature/preparer", json={"ids": [doc_id], "certificates": [pem]}, headers=headers)
    assert prepared.status_code == 200, prepared.text
    body = prepared.json()
    (document,) = body["documents"]
    assert document["kind"] == "office"
    values = [base64.b64encode(key.sign_raw(base64.b64decode(r["data_to_sign"]))).decode()
              for r in document["requests"]]
    finished = client.post("/signature/finaliser", json={"session": body["session"],
                                                         "signatures": {str(doc_id): values}}, headers=headers)
    assert finished.status_code == 200, finished.text
    (result,) = finished.json()["results"]
    return dict(result)


def bad_key(server: LiveServer, which: str) -> ServerSigner:
    bad = server.home.path / "demo" / "bad"
    return load_pem_signer((bad / f"{which}.pem").read_bytes(), (bad / f"{which}.key").read_bytes())


def test_refusals_come_back_in_the_portal_json(portal_server: LiveServer, ctx: AppContext) -> None:
    expired, stranger = bad_key(portal_server, "expired"), bad_key(portal_server, "unknown-ca")
    for key in (expired, stranger):  # bound to Sophie's account: the ownership check passes, not the others
        admin.add_certificate(ctx, "123456789", SIGNER, key.certificate.public_bytes(serialization.Encoding.PEM))
    doc_id = deposit(portal_server, "Arrêté de voirie n°1.odt")
    with portal_server.client(SIGNER) as signer:
        result = portal_sign(signer, doc_id, expired)
        cert = expired.certificate
        assert result["ok"] is False
        assert result["message"] == E.SIGNATURE_CERTIFICATE_EXPIRED.format(
            start=f"{cert.not_valid_before_utc:%d/%m/%Y}", end=f"{cert.not_valid_after_utc:%d/%m/%Y}")
        result = portal_sign(signer, doc_id, stranger)
        assert result["ok"] is False
        assert result["message"] == E.SIGNATURE_UNKNOWN_CA.message
    wait_state(portal_server, doc_id, "Envoyé pour signature")  # still waiting: nothing was stored


def test_own_certificate_signs_and_the_document_becomes_signed(portal_server: LiveServer, tmp_path: Path) -> None:
    doc_id = deposit(portal_server, "Arrêté de voirie n°2.odt")
    key = load_signer(portal_server.home.path / "demo" / f"{SIGNER}.p12", "demo")
    with portal_server.client(SIGNER) as signer:
        result = portal_sign(signer, doc_id, key)
    assert result == {"id": doc_id, "name": "Arrêté de voirie n°2.odt", "ok": True, "message": None}
    wait_state(portal_server, doc_id, "Classé")
    with portal_server.client(AGENT) as agent:
        states = [h["stateName"] for h in agent.get(f"/parapheur-ws/rest/v1/documents/v2/{doc_id}/history").json()]
    assert "Signé" in states
