"""O2 ``uploadSA`` and O7 ``generateSAUrl``: the certificate-authenticated page (spec §3.4.2), refusals of missing
or bad certificates, the authentication log (subject, issuer, serial, fingerprint, date, IP) kept and returned by
``docInformation.logs``, the signature with the workflow's server certificate, batch pages."""

from __future__ import annotations

import html
from pathlib import Path

from cryptography import x509

from parafe.domain.errors import E
from parafe.security.pki import fingerprint_sha256
from tests.api.oss.helpers import (
    AGENT,
    SIGNER,
    Oss,
    error,
    pdfsig,
    pdftext,
    post_doc,
    pyhanko_report,
    token_of,
    validate,
)

RETURN = "https://editeur.test/sa"


def upload_sa(oss: Oss) -> tuple[int, str]:
    with oss.client(AGENT) as agent:
        r = post_doc(agent, "uploadSA", redirectionUrl=RETURN)
    assert r.status_code == 200, r.text
    return int(r.json()["docId"]), token_of(r.json()["url"])


def test_certificate_page_log_and_signature(oss: Oss, tmp_path: Path) -> None:
    doc_id, token = upload_sa(oss)
    with oss.public() as browser:
        page = browser.get(f"/oss/signature/{token}")
        assert page.status_code == 401
        text = html.unescape(page.text)
        assert E.CERT_MISSING.message in text
        assert "/documents/" not in page.text  # nothing shown before
        assert browser.get(f"/oss/signature/{token}/documents/{doc_id}").status_code == 401
        assert browser.post(f"/oss/signature/{token}/signer").status_code == 401
    for bad, entry in (("revoked", E.CERT_REVOKED), ("expired", E.CERT_EXPIRED), ("unknown-ca", E.CERT_UNKNOWN_CA)):
        with oss.public(cert=oss.home.bad(bad)) as browser:
            page = browser.get(f"/oss/signature/{token}")
            assert page.status_code == 401
            assert entry.message in html.unescape(page.text)
    cert_path, _ = oss.home.demo(SIGNER)
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    with oss.public(cert=oss.home.demo(SIGNER)) as browser:
        page = browser.get(f"/oss/signature/{token}")
        assert page.status_code == 200, page.text
        assert "Sophie Signataire" in html.unescape(page.text)
        assert browser.get(f"/oss/signature/{token}/documents/{doc_id}").status_code == 200
        done = browser.post(f"/oss/signature/{token}/signer")
        assert done.status_code == 303, done.text
        assert done.headers["location"] == f"{RETURN}?return=SIGNED"
    with oss.client(AGENT) as agent:
        info = agent.get(f"/oss/docInformation/{doc_id}").json()
        signed = agent.get(f"/oss/downloadDoc/{doc_id}").content
    events = [log["event"] for log in info["logs"]]
    assert events[0] == "authentication"
    assert events[-1] == "signature"
    for log in info["logs"]:
        assert log["subject"] == cert.subject.rfc4514_string()
        assert log["issuer"] == cert.issuer.rfc4514_string()
        assert int(log["serialNumber"], 16) == cert.serial_number
        assert log["fingerprint"] == fingerprint_sha256(cert)
        assert log["ip"] == "127.0.0.1"
        assert log["date"].endswith("Z")
    assert info["signatureDate"] is not None
    assert info["redirectionURL"] == RETURN
    pdfsig(signed, tmp_path, oss.home.path / "pki" / "ca.pem")
    report = pyhanko_report(signed, [oss.home.path / "pki" / "ca.pem"])
    assert report.signatures[0].signer == "Commune de Démo - signature serveur"  # server certificate (§3.4.2 5)
    text = pdftext(signed, tmp_path)
    assert "Sophie Signataire" in text
    assert "Authentifié par certificat" in text


def test_refusal_is_logged(oss: Oss) -> None:
    doc_id, token = upload_sa(oss)
    with oss.public() as browser:
        assert browser.post(f"/oss/signature/{token}/refuser", data={"motif": "non"}).status_code == 401
    with oss.public(cert=oss.home.demo(SIGNER)) as browser:
        r = browser.post(f"/oss/signature/{token}/refuser", data={"motif": "Je ne suis pas concerné"})
        assert r.status_code == 303
        assert r.headers["location"] == f"{RETURN}?return=REFUSED"
    with oss.client(AGENT) as agent:
        info = agent.get(f"/oss/docInformation/{doc_id}").json()
    assert [log["event"] for log in info["logs"]] == ["refusal"]
    assert info["signatureDate"] is None


def test_batch_certificate_page(oss: Oss, tmp_path: Path) -> None:
    first, _ = upload_sa(oss)
    second, _ = upload_sa(oss)
    with oss.client(AGENT) as agent:
        r = agent.post("/oss/generateSAUrl", data={"ids": f"{first}, {second}", "url": "https://editeur.test/lot"})
        assert r.status_code == 200, r.text
        assert r.json()["Ids"] == [first, second]
        token = token_of(r.json()["url"])
        sms = post_doc(agent, "uploadSMS", firstname="A", lastname="B", email="a.b@exemple.fr").json()["docId"]
        error(agent.post("/oss/generateSAUrl", data={"ids": f"{first},{sms}"}), 409, E.OSS_MODE_NOT_ALLOWED)
        error(agent.post("/oss/generateSAUrl", data={"ids": "abc"}), 404, E.DOCUMENT_NOT_FOUND)
        error(agent.post("/oss/generateSAUrl", data={"ids": str(first), "url": "ftp://x"}), 400, E.BAD_REQUEST)
    with oss.public(cert=oss.home.demo(SIGNER)) as browser:
        page = browser.get(f"/oss/signature/{token}")
        assert "Les 2 documents" in html.unescape(page.text)
        done = browser.post(f"/oss/signature/{token}/signer")
        assert done.headers["location"] == "https://editeur.test/lot?return=SIGNED"
    with oss.client(AGENT) as agent:
        for doc_id in (first, second):
            validate(agent.get(f"/oss/downloadDoc/{doc_id}").content, tmp_path, oss.home.path)
            assert agent.get(f"/oss/docInformation/{doc_id}").json()["logs"][-1]["event"] == "signature"
        error(agent.post("/oss/generateSAUrl", data={"ids": str(first)}), 409, E.OSS_ALREADY_SIGNED)
