"""``parafe-signer``'s local server, over real HTTP on 127.0.0.1: it answers only the allowed portal origins and
the loopback Host, signs only after the confirmation posted with the job's secret, refuses a PDF whose shown
content is not what the signature covers, and escapes what it displays."""

from __future__ import annotations

import base64
import html
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parafe.signer.server import Helper, check_pdf, make_server
from parafe.signing import remote
from parafe.signing.keys import load_signer, verify_raw
from tests.fixtures.files import pdf_bytes

PORTAL = "https://parapheur.example.fr"


@pytest.fixture(scope="module")
def key(pki_template: Path) -> Any:
    return load_signer(pki_template / "demo" / "signataire@demo.parafe.test.p12", "demo")


@pytest.fixture
def helper(key: Any) -> Iterator[Helper]:
    messages: list[str] = []
    helper = Helper(key, {PORTAL}, 0, log=messages.append)
    server = make_server(helper)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield helper
    finally:
        server.shutdown()
        server.server_close()


def client(helper: Helper, origin: str | None = PORTAL) -> httpx.Client:
    headers = {"Origin": origin} if origin else {}
    return httpx.Client(base_url=f"http://127.0.0.1:{helper.port}", headers=headers, timeout=10)


def job_payload(key: Any, name: str = "contrat.pdf", tamper: bool = False) -> tuple[dict[str, Any], Any]:
    session, requests = remote.prepare_pdf(pdf_bytes(2), key.certificate)
    prepared = bytearray(session.prepared_pdf)
    if tamper:  # the helper is shown another document than the one whose digest is signed
        prepared[200] ^= 0x01
    return {"origin": PORTAL, "signer": "Sophie Signataire", "documents": [{
        "id": 100000001, "name": name, "kind": "pdf", "prepared": base64.b64encode(bytes(prepared)).decode(),
        "requests": [r.to_dict() for r in requests]}]}, requests


def test_certificate_and_origin_rules(helper: Helper, key: Any) -> None:
    with client(helper) as portal:
        info = portal.get("/v1/certificat")
        assert info.status_code == 200
        assert info.headers["access-control-allow-origin"] == PORTAL
        assert info.json()["name"] == "Sophie Signataire"
        preflight = portal.options("/v1/signatures", headers={"Access-Control-Request-Method": "POST",
                                                             "Access-Control-Request-Private-Network": "true"})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-private-network"] == "true"
    with client(helper, "https://evil.example") as evil:
        assert evil.get("/v1/certificat").status_code == 403
        assert evil.post("/v1/signatures", json=job_payload(key)[0]).status_code == 403
        assert evil.options("/v1/signatures").status_code == 403
    rebinding = httpx.get(f"http://127.0.0.1:{helper.port}/v1/certificat", headers={"Host": "evil.example"})
    assert rebinding.status_code == 421


def test_signs_only_after_confirmation_with_the_secret(helper: Helper, key: Any) -> None:
    payload, requests = job_payload(key)
    with client(helper) as portal:
        job = portal.post("/v1/signatures", json=payload).json()
        assert portal.get(f"/v1/signatures/{job['job']}").json()["status"] == "pending"
        url, secret = job["confirm_url"].split("?t=")
        page = httpx.get(job["confirm_url"]).text
        assert "Vérifié : ce document est exactement celui qui sera signé" in page
        assert "https://parapheur.example.fr" in page
        assert httpx.get(f"{url}?t=wrong").status_code == 404
        assert httpx.post(url, data={"t": "wrong", "decision": "signer"}).status_code == 404
        foreign = httpx.post(url, data={"t": secret, "decision": "signer"}, headers={"Origin": PORTAL})
        assert foreign.status_code == 403
        assert portal.get(f"/v1/signatures/{job['job']}").json()["status"] == "pending"
        done = httpx.post(url, data={"t": secret, "decision": "signer"},
                          headers={"Origin": f"http://127.0.0.1:{helper.port}"})
        assert "Signature effectuée" in done.text
        state = portal.get(f"/v1/signatures/{job['job']}").json()
    assert state["status"] == "signed"
    value = base64.b64decode(state["signatures"]["100000001"][0])
    assert verify_raw(key.certificate, value, requests[0].data_to_sign)
    # the prepared PDF can be displayed from the confirmation page
    shown = httpx.get(url + "/document/100000001", params={"t": secret})
    assert shown.headers["content-type"] == "application/pdf"


def test_cancel_and_tampered_pdf(helper: Helper, key: Any) -> None:
    with client(helper) as portal:
        job = portal.post("/v1/signatures", json=job_payload(key)[0]).json()
        url, secret = job["confirm_url"].split("?t=")
        httpx.post(url, data={"t": secret, "decision": "annuler"})
        assert portal.get(f"/v1/signatures/{job['job']}").json() == {
            "status": "cancelled", "message": "Signature annulée par le signataire.", "signatures": {}}
        bad = portal.post("/v1/signatures", json=job_payload(key, "<script>alert(1)</script>.pdf", tamper=True)[0])
        url, secret = bad.json()["confirm_url"].split("?t=")
        page = httpx.get(f"{url}?t={secret}").text
        assert "l'empreinte signée ne correspond pas au document affiché" in html.unescape(page)
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;" in page
        assert "disabled" in page
        httpx.post(url, data={"t": secret, "decision": "signer"})
        state = portal.get(f"/v1/signatures/{bad.json()['job']}").json()
    assert state["status"] == "error"
    assert state["signatures"] == {}


def test_check_pdf(key: Any) -> None:
    session, requests = remote.prepare_pdf(pdf_bytes(3), key.certificate)
    verdict, pages, digest = check_pdf(session.prepared_pdf, requests[0].data_to_sign)
    assert (verdict, pages, len(digest)) == ("ok", 3, 64)
    assert check_pdf(session.prepared_pdf + b"\n", requests[0].data_to_sign)[0] != "ok"
    assert check_pdf(b"%PDF-1.7 nothing", requests[0].data_to_sign)[0].startswith("aucune zone")
