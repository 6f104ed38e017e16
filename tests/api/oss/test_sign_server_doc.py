"""O1 ``signServerDoc`` over TLS: synchronous signed PDF with ``X-FAST-document-id``, asynchronous mode, the
pictogram where ``pictogramme`` puts it (cm from the bottom-left, D7), metadata in the pictogram, and the errors."""

from __future__ import annotations

import time
from pathlib import Path

from parafe.domain.errors import E
from parafe.signing.stamp import CM
from tests.api.oss.helpers import (
    AGENT,
    OTHER,
    VISA,
    Oss,
    assert_rect,
    error,
    meta_xml,
    pdfsig,
    pdftext,
    post_doc,
    pyhanko_report,
    signature_widgets,
    validate,
)
from tests.fixtures.files import encrypted_pdf, pdf_bytes

# the demo workflow's pictogram size: 7.5 cm x 2.8 cm
WIDTH, HEIGHT = 7.5 * CM, 2.8 * CM


def test_synchronous_signature_at_the_requested_position(oss: Oss, tmp_path: Path) -> None:
    with oss.client(AGENT) as agent:
        r = post_doc(agent, "signServerDoc", data=pdf_bytes(pages=2), name="arrêté n°12.pdf", pictogramme="2,3,1",
                     meta=meta_xml(REFERENCE="ARR-2026-12", SERVICE="Urbanisme"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    doc_id = int(r.headers["X-FAST-document-id"])
    assert doc_id >= 500_000_000
    assert "arr%C3%AAt%C3%A9" in r.headers["content-disposition"]
    signed = r.content
    assert signed.startswith(b"%PDF")
    pdfsig(signed, tmp_path, oss.home.path / "pki" / "ca.pem")
    report = pyhanko_report(signed, [oss.home.path / "pki" / "ca.pem"])
    assert len(report.signatures) == 1
    assert report.signatures[0].signer == "Commune de Démo - signature serveur"
    [(page, rect)] = signature_widgets(signed)
    assert page == 0
    assert_rect(rect, (2 * CM, 3 * CM, 2 * CM + WIDTH, 3 * CM + HEIGHT))
    text = pdftext(signed, tmp_path)
    assert "Réf. : ARR-2026-12" in text  # the workflow shows REFERENCE in the pictogram, not SERVICE
    assert "Urbanisme" not in text


def test_negative_page_counts_from_the_end_and_default_position(oss: Oss, tmp_path: Path) -> None:
    with oss.client(AGENT) as agent:
        r = post_doc(agent, "signServerDoc", data=pdf_bytes(pages=5), pictogramme="1.5,20.25,-2")
        assert r.status_code == 200, r.text
        [(page, rect)] = signature_widgets(r.content)
        assert page == 3
        assert_rect(rect, (1.5 * CM, 20.25 * CM, 1.5 * CM + WIDTH, 20.25 * CM + HEIGHT))
        validate(r.content, tmp_path, oss.home.path)
        default = post_doc(agent, "signServerDoc", data=pdf_bytes(pages=3))
        assert default.status_code == 200, default.text
        [(page, rect)] = signature_widgets(default.content)
        assert page == 2  # the workflow's default: last page, 12 cm / 1.5 cm
        assert_rect(rect, (12 * CM, 1.5 * CM, 12 * CM + WIDTH, 1.5 * CM + HEIGHT))
        validate(default.content, tmp_path, oss.home.path)


def test_asynchronous_signature(oss: Oss, tmp_path: Path) -> None:
    with oss.client(AGENT) as agent:
        r = post_doc(agent, "signServerDoc", asynchrone="true")
        assert r.status_code == 200, r.text
        assert r.content == b""
        doc_id = int(r.headers["X-FAST-document-id"])
        deadline = time.monotonic() + 30
        while True:
            info = agent.get(f"/oss/docInformation/{doc_id}").json()
            if info["signatureDate"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert info["signatureDate"], info
        assert info["archiveDate"] == info["signatureDate"]  # the signed version is archived when it is stored
        signed = agent.get(f"/oss/downloadDoc/{doc_id}")
        assert signed.status_code == 200
        assert signed.headers["X-FAST-document-id"] == str(doc_id)
        validate(signed.content, tmp_path, oss.home.path)
        assert info["filesize"] == len(signed.content)


def test_authentication_and_workflow_errors(oss: Oss) -> None:
    with oss.client() as anonymous:
        error(post_doc(anonymous, "signServerDoc"), 401, E.CERT_MISSING)
    with oss.client(cert=oss.home.bad("revoked")) as revoked:
        error(post_doc(revoked, "signServerDoc"), 401, E.CERT_REVOKED)
    with oss.client(AGENT) as agent:
        unknown = error(post_doc(agent, "signServerDoc", workflow="nope"), 404, E.OSS_WORKFLOW_NOT_FOUND)
        foreign = error(post_doc(agent, "signServerDoc", workflow="oss-autre"), 404, E.OSS_WORKFLOW_NOT_FOUND)
        assert unknown["userFriendlyMessage"] == foreign["userFriendlyMessage"]  # no oracle across subscribers
        error(post_doc(agent, "signServerDoc", workflow="oss-demo-2"), 403, E.NO_PERMISSION)
        error(post_doc(agent, "signServerDoc", workflow=None), 400, E.BAD_REQUEST)
        error(post_doc(agent, "uploadSA", workflow="oss-serveur", redirectionUrl="https://x.test/"), 409,
              E.OSS_MODE_NOT_ALLOWED)
        assert post_doc(agent, "signServerDoc", workflow="oss-serveur").status_code == 200
    with oss.client(VISA) as visa:
        error(post_doc(visa, "signServerDoc"), 403, E.NO_PERMISSION)
        assert post_doc(visa, "signServerDoc", workflow="oss-demo-2").status_code == 200
    with oss.client(OTHER) as other:
        assert post_doc(other, "signServerDoc", workflow="oss-autre").status_code == 200


def test_input_errors(oss: Oss, tmp_path: Path) -> None:
    with oss.client(AGENT) as agent:
        error(agent.post("/oss/signServerDoc", data={"workflowId": "oss-demo"},
                         files={"other": ("x.txt", b"x", "text/plain")}), 400, E.BAD_REQUEST)
        error(post_doc(agent, "signServerDoc", data=b""), 422, E.EMPTY_FILE)
        error(post_doc(agent, "signServerDoc", data=b"hello, not a PDF"), 415, E.PDF_INVALID)
        protected = encrypted_pdf(tmp_path, allow_modify=False).read_bytes()
        error(post_doc(agent, "signServerDoc", data=protected), 422, E.PDF_PROTECTED)
        for bad in ("abc", "1", "1,2,3,4", "-1,2", "1,2,0"):
            error(post_doc(agent, "signServerDoc", pictogramme=bad), 400, E.OSS_PICTOGRAM_INVALID)
        body = error(post_doc(agent, "signServerDoc", pictogramme="1,2,3"), 400, E.OSS_PICTOGRAM_INVALID)
        assert "la page 3 n'existe pas" in body["userFriendlyMessage"]
        error(post_doc(agent, "signServerDoc", meta=meta_xml(INCONNUE="x")), 422, E.METADATA_UNKNOWN)
        error(post_doc(agent, "signServerDoc", meta=b"<pas-du-xml"), 422, E.XML_MALFORMED)
        error(post_doc(agent, "signServerDoc", name="a/b.pdf"), 400, E.BAD_CHARACTERS)
        error(post_doc(agent, "signServerDoc", name="x" * 151 + ".pdf"), 400, E.NAME_TOO_LONG)
        # a JSON metaFile is accepted too
        r = post_doc(agent, "signServerDoc", meta=b'{"REFERENCE": "JSON-1"}')
        assert r.status_code == 200, r.text
        assert "Réf. : JSON-1" in pdftext(r.content, tmp_path)
