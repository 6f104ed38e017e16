"""O4 ``uploadSGC``: a batch of documents (``dataFile`` repeated), a code sent when the page opens, then a
certificate issued on the fly in the signer's name by the internal CA signs every document; ``jsonPictogram``
(points, bottom-left origin, D7) places the pictogram."""

from __future__ import annotations

import io
import json
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.reader import PdfFileReader

from parafe.domain.errors import E
from tests.api.oss.helpers import (
    AGENT,
    Oss,
    assert_rect,
    code_in,
    error,
    last_message,
    pdfsig,
    pdftext,
    pyhanko_report,
    signature_widgets,
    token_of,
    unique,
    validate,
)
from tests.fixtures.files import pdf_bytes


def signer_certificate(pdf: bytes) -> x509.Certificate:
    """The signing certificate embedded in the document's only signature."""
    [sig] = PdfFileReader(io.BytesIO(pdf)).embedded_signatures
    return x509.load_der_x509_certificate(sig.signer_cert.dump())


def upload_sgc(oss: Oss, *, files: int = 2, phone: str | None = "06 44 44 44 44",
               **fields: str) -> tuple[list[int], str]:
    parts = [("dataFile", (unique(), pdf_bytes(pages=2, text=f"lot {i}"), "application/pdf")) for i in range(files)]
    data = {"workflowId": "oss-demo", "firstname": "Jeanne", "lastname": "Martin", "email": "jeanne.martin@exemple.fr",
            "redirectionUrl": "https://editeur.test/sgc", **fields}
    if phone:
        data["phoneNumber"] = phone
    with oss.client(AGENT) as agent:
        r = agent.post("/oss/uploadSGC", files=parts, data=data)
    assert r.status_code == 200, r.text
    body = r.json()
    ids = body.get("docIds", [body["docId"]])
    assert body["docId"] == ids[0]
    assert len(ids) == files
    return ids, token_of(body["url"])


def test_batch_signed_with_a_certificate_in_the_signers_name(oss: Oss, tmp_path: Path) -> None:
    pictogram = {"x": 60, "y": 60, "width": 200, "height": 100, "page": 1}  # the spec's example
    ids, token = upload_sgc(oss, jsonPictogram=json.dumps(pictogram))
    with oss.public() as browser:
        page = browser.get(f"/oss/signature/{token}")  # the code leaves as the page opens (§3.4.4 step 4)
        assert page.status_code == 200
        code = code_in(last_message(oss.ctx, "sms", "+33644444444").body)
        done = browser.post(f"/oss/signature/{token}/signer", data={"code": code})
        assert done.status_code == 303
        assert done.headers["location"] == "https://editeur.test/sgc?return=SIGNED"
    home = oss.home.path
    internal_ca = x509.load_pem_x509_certificate((home / "pki" / "oss-ca" / "ca.pem").read_bytes())
    root = x509.load_pem_x509_certificate((home / "pki" / "ca.pem").read_bytes())
    serials = set()
    with oss.client(AGENT) as agent:
        for doc_id in ids:
            signed = agent.get(f"/oss/downloadDoc/{doc_id}").content
            pdfsig(signed, tmp_path, home / "pki" / "ca.pem")
            report = pyhanko_report(signed, [home / "pki" / "ca.pem"])
            assert report.signatures[0].signer == "Jeanne Martin"
            cert = signer_certificate(signed)
            assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Jeanne Martin"
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert san.get_values_for_type(x509.RFC822Name) == ["jeanne.martin@exemple.fr"]
            cert.verify_directly_issued_by(internal_ca)  # issued by the internal CA…
            internal_ca.verify_directly_issued_by(root)  # …which chains to the trusted root
            assert cert.issuer == internal_ca.subject
            serials.add(cert.serial_number)
            [(page_index, rect)] = signature_widgets(signed)
            assert page_index == 0
            assert_rect(rect, (60, 60, 260, 160))
            assert "Jeanne Martin" in pdftext(signed, tmp_path)
            info = agent.get(f"/oss/docInformation/{doc_id}").json()
            assert info["signatureDate"] is not None
            assert info["Smsdate"] is not None
    assert len(serials) == 1  # one certificate for the whole batch


def test_code_by_email_without_phone_and_single_file(oss: Oss, tmp_path: Path) -> None:
    [doc_id], token = upload_sgc(oss, files=1, phone=None, email="jm2@exemple.fr")
    with oss.public() as browser:
        browser.get(f"/oss/signature/{token}")
        code = code_in(last_message(oss.ctx, "mail", "jm2@exemple.fr").body)
        assert browser.post(f"/oss/signature/{token}/signer", data={"code": code}).status_code == 303
    with oss.client(AGENT) as agent:
        signed = agent.get(f"/oss/downloadDoc/{doc_id}").content
    validate(signed, tmp_path, oss.home.path)
    [(page_index, _rect)] = signature_widgets(signed)
    assert page_index == 1  # the workflow's default pictogram: last page


def test_upload_errors(oss: Oss) -> None:
    with oss.client(AGENT) as agent:
        files = [("dataFile", (unique(), pdf_bytes(), "application/pdf"))]
        base = {"workflowId": "oss-demo", "firstname": "A", "lastname": "B", "email": "a@exemple.fr"}
        for missing in ("firstname", "lastname", "email"):
            data = {k: v for k, v in base.items() if k != missing}
            body = error(agent.post("/oss/uploadSGC", files=files, data=data), 400, E.OSS_SIGNER_MISSING)
            assert missing in body["userFriendlyMessage"]
        error(agent.post("/oss/uploadSGC", files=files, data={**base, "email": "pas-un-courriel"}), 400,
              E.OSS_SIGNER_MISSING)
        error(agent.post("/oss/uploadSGC", files=files, data={**base, "jsonPictogram": "{x: 1}"}), 400,
              E.OSS_PICTOGRAM_INVALID)
        error(agent.post("/oss/uploadSGC", files=files, data={**base, "jsonPictogram": '{"x": 1, "y": 1, "page": 4}'}),
              400, E.OSS_PICTOGRAM_INVALID)
        two = files + [("dataFile", (unique(), b"not a pdf", "application/pdf"))]
        error(agent.post("/oss/uploadSGC", files=two, data=base), 415, E.PDF_INVALID)
        error(agent.post("/oss/uploadSMS", files=files + files, data=base), 400, E.BAD_REQUEST)  # one file only
