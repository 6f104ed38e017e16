"""PAdES: every signature checked by pdfsig (poppler) AND pyHanko's validator, at the expected level.

Both production paths are exercised: ``pades.sign_pdf`` (pyHanko) and the bulk fast writer
(``BulkPdfSigner``); tampered copies must fail both validators.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore

from parafe.signing.bulk import BulkPdfSigner
from parafe.signing.errors import PdfProtectedError, PdfSigningError, TimestampError
from parafe.signing.keys import ServerSigner
from parafe.signing.pades import sign_pdf
from parafe.signing.stamp import CM, StampSpec
from parafe.signing.trust import make_validation_context
from parafe.signing.verify import verify_pdf

from .conftest import Pki, der_length, make_pdf, openssl_cms_verify, pdfsig, xref_stream_pdf


def pyhanko_statuses(data: bytes, pki: Pki, *, crls: bool = False) -> list:
    vc = make_validation_context([pki.ca_pem], crls=[pki.crl_pem] if crls else ())
    reader = PdfFileReader(io.BytesIO(data))
    if reader.encrypted:
        reader.decrypt("")
    return [validate_pdf_signature(s, vc, vc) for s in reader.embedded_regular_signatures]


def sign_with(path: str, data: bytes, signer: ServerSigner, **kw: Any) -> bytes:
    if path == "pyhanko":
        return sign_pdf(data, signer, **kw)
    bulk = BulkPdfSigner(signer, **kw)
    out = bulk.sign_one(data)
    assert bulk.fast_count == 1, "the bulk path must have used the fast writer"
    return out


def check_both(tmp_path: Path, data: bytes, pki: Pki, *, n: int = 1, level: str = "B-B", total: bool = True) -> None:
    """pdfsig and pyHanko both accept all ``n`` signatures at ``level``; the last covers the whole file.

    poppler 22.12's pdfsig checks the certificate chain of the FIRST signature only (later ones always print
    "Unknown issue with Certificate"), so the chain of every signature is also checked by ``openssl cms``.
    """
    path = tmp_path / "signed.pdf"
    path.write_bytes(data)
    _, sigs, out = pdfsig(path, pki)
    assert len(sigs) == n, out
    for s in sigs:
        assert s.valid, out
        assert s.subfilter == "ETSI.CAdES.detached", out
    assert sigs[0].trusted, out
    assert sigs[-1].total == total, out
    ossl = openssl_cms_verify(data, pki, tmp_path)
    assert len(ossl) == n, ossl
    assert all(ok for ok, _ in ossl), ossl
    statuses = pyhanko_statuses(data, pki)
    assert len(statuses) == n
    for st in statuses:
        assert st.bottom_line, st.pretty_print_details()
        assert st.docmdp_ok in (True, None)
    report = verify_pdf(data, [pki.ca_pem], crls=[pki.crl_pem])
    assert report.valid, report.to_text()
    assert report.signatures[-1].level == level, report.to_text()


@pytest.mark.parametrize("path", ["pyhanko", "bulk"])
def test_bb_invisible(tmp_path: Path, pki: Pki, signer: ServerSigner, pdf5: bytes, path: str) -> None:
    out = sign_with(path, pdf5, signer, reason="Approbation", location="Foix")
    check_both(tmp_path, out, pki)
    assert out.startswith(pdf5), "the signature must be an incremental update"


@pytest.mark.parametrize("path", ["pyhanko", "bulk"])
def test_bb_visible_stamp_position_and_render(
    tmp_path: Path, pki: Pki, signer: ServerSigner, pdf5: bytes, path: str,
) -> None:
    spec = StampSpec.from_cm(2, 3, page=-1, quality="Maire", extra_lines=("Délibération n° 2026-12",))
    out = sign_with(path, pdf5, signer, stamp=spec)
    check_both(tmp_path, out, pki)
    with pikepdf.open(io.BytesIO(out)) as pdf:
        last = pdf.pages[-1]
        widgets = [a for a in last.get("/Annots", []) if a.get("/FT") == "/Sig"]
        assert len(widgets) == 1
        rect = [float(v) for v in widgets[0].Rect]
        assert rect[0] == pytest.approx(2 * CM, abs=0.01)
        assert rect[1] == pytest.approx(3 * CM, abs=0.01)
        assert rect[2] - rect[0] == pytest.approx(spec.width, abs=0.01)
        assert not pdf.pages[0].get("/Annots")
    assert_ink_at(tmp_path, out, pdf5, page=5, x=2 * CM, y=3 * CM, w=spec.width, h=spec.height)


def assert_ink_at(tmp_path: Path, data: bytes, original: bytes, *, page: int, x: float, y: float, w: float,
                  h: float) -> None:
    """Render ``page`` of the original and the signed PDF at 72 dpi (pdftoppm): the pixels that changed form
    exactly the pictogram's box at ``x, y`` (points from the bottom-left of the page as displayed)."""
    import subprocess

    from PIL import Image, ImageChops

    images = []
    for name, content in (("before", original), ("after", data)):
        pdf = tmp_path / f"{name}.pdf"
        pdf.write_bytes(content)
        subprocess.run(["pdftoppm", "-r", "72", "-f", str(page), "-l", str(page), "-png", str(pdf),
                        str(tmp_path / name)], check=True, timeout=60)
        images.append(Image.open(next(tmp_path.glob(f"{name}*.png"))).convert("L"))
    bbox = ImageChops.difference(*images).getbbox()
    assert bbox is not None, "the signature left no visible mark"
    height = images[1].height
    expected = (x, height - (y + h), x + w, height - y)  # image coordinates: origin top-left
    assert bbox == pytest.approx(expected, abs=2.5), (bbox, expected)


@pytest.mark.parametrize(("path", "rotate"), [("pyhanko", 90), ("bulk", 90), ("bulk", 180), ("pyhanko", 270)])
def test_stamp_on_rotated_page(tmp_path: Path, pki: Pki, signer: ServerSigner, path: str, rotate: int) -> None:
    data = make_pdf(2, rotate=rotate)
    spec = StampSpec.from_cm(3, 2, page=1)
    out = sign_with(path, data, signer, stamp=spec)
    check_both(tmp_path, out, pki)
    assert_ink_at(tmp_path, out, data, page=1, x=3 * CM, y=2 * CM, w=spec.width, h=spec.height)


@pytest.mark.parametrize(("first", "second"), [("pyhanko", "bulk"), ("bulk", "pyhanko"), ("bulk", "bulk")])
def test_successive_signers_keep_earlier_signatures_valid(
    tmp_path: Path, pki: Pki, signer: ServerSigner, signer2: ServerSigner, pdf5: bytes, first: str, second: str
) -> None:
    once = sign_with(first, pdf5, signer, stamp=StampSpec.from_cm(1, 1, page=1))
    twice = sign_with(second, once, signer2, stamp=StampSpec.from_cm(9, 1, page=1, quality="Directrice"))
    assert twice.startswith(once)
    check_both(tmp_path, twice, pki, n=2)
    first_status = pyhanko_statuses(twice, pki)[0]
    assert first_status.modification_level is not None
    assert first_status.modification_level.name in ("FORM_FILLING", "LTA_UPDATES")
    names = {s.signer for s in verify_pdf(twice, [pki.ca_pem]).signatures}
    assert names == {"Jean Dupont", "Marie-Hélène Lefèvre"}


@pytest.mark.parametrize("path", ["pyhanko", "bulk"])
def test_tampered_copy_fails_both_validators(
    tmp_path: Path, pki: Pki, signer: ServerSigner, pdf5: bytes, path: str,
) -> None:
    out = bytearray(sign_with(path, pdf5, signer))
    # one byte inside the signed range: a visible character of the first page's text, in the original part
    pos = bytes(out).find(b"ReportLab PDF Library")
    assert 0 < pos < len(pdf5)
    out[pos] ^= 0x01
    tampered = bytes(out)
    path_ = tmp_path / "tampered.pdf"
    path_.write_bytes(tampered)
    _, sigs, text = pdfsig(path_, pki)
    assert sigs, text
    assert not sigs[0].valid, text
    statuses = pyhanko_statuses(tampered, pki)
    assert not statuses[0].intact
    assert not statuses[0].bottom_line
    assert not openssl_cms_verify(tampered, pki, tmp_path)[0][0]
    report = verify_pdf(tampered, [pki.ca_pem])
    assert not report.valid
    assert report.history_label == "signature rejetée"


@pytest.mark.parametrize("path", ["pyhanko", "bulk"])
def test_xref_stream_input(tmp_path: Path, pki: Pki, signer: ServerSigner, pdf5: bytes, path: str) -> None:
    data = xref_stream_pdf(pdf5)
    assert b"/XRef" in data
    once = sign_with(path, data, signer, stamp=StampSpec.from_cm(2, 2))
    twice = sign_with(path, once, signer)
    check_both(tmp_path, twice, pki, n=2)


@pytest.mark.parametrize("path", ["pyhanko", "bulk"])
def test_bt_through_http_tsa(
    tmp_path: Path, pki: Pki, signer: ServerSigner, pdf5: bytes, tsa_url: str, path: str,
) -> None:
    out = sign_with(path, pdf5, signer, level="B-T", tsa_url=tsa_url)
    check_both(tmp_path, out, pki, level="B-T")
    st = pyhanko_statuses(out, pki)[0]
    assert st.timestamp_validity is not None
    assert st.timestamp_validity.valid
    assert st.timestamp_validity.trusted


@pytest.mark.parametrize("path", ["pyhanko", "bulk"])
def test_bt_tsa_failure_is_an_error(pki: Pki, signer: ServerSigner, pdf5: bytes, dead_tsa_url: str, path: str) -> None:
    with pytest.raises(TimestampError):
        sign_with(path, pdf5, signer, level="B-T", tsa_url=dead_tsa_url)
    with pytest.raises(TimestampError):
        sign_with(path, pdf5, signer, level="B-T")  # no URL: never a silent B-B


def test_blt_embeds_crl_in_dss(tmp_path: Path, pki: Pki, signer: ServerSigner, pdf5: bytes, tsa_url: str) -> None:
    vc = make_validation_context([pki.ca_pem], crls=[pki.crl_pem])
    out = sign_pdf(pdf5, signer, level="B-LT", tsa_url=tsa_url, validation_context=vc)
    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(out)))
    assert dss.crls, "B-LT must carry revocation data"
    check_both(tmp_path, out, pki, level="B-LT", total=False)  # the DSS revision follows the signature
    report = verify_pdf(out, [pki.ca_pem])  # no CRL given: the DSS alone must suffice
    assert report.signatures[0].ltv_ok is True, report.to_text()
    assert report.valid


def test_blta_adds_a_document_timestamp(
    tmp_path: Path, pki: Pki, signer: ServerSigner, pdf5: bytes, tsa_url: str,
) -> None:
    vc = make_validation_context([pki.ca_pem], crls=[pki.crl_pem])
    out = sign_pdf(pdf5, signer, level="B-LTA", tsa_url=tsa_url, validation_context=vc)
    report = verify_pdf(out, [pki.ca_pem], crls=[pki.crl_pem])
    assert report.valid, report.to_text()
    assert [s.level for s in report.signatures] == ["B-LTA", "DocTimeStamp"]
    path = tmp_path / "lta.pdf"
    path.write_bytes(out)
    _, sigs, text = pdfsig(path, pki)
    assert len(sigs) == 2, text
    assert sigs[0].valid, text
    assert sigs[0].trusted, text
    # poppler 22.12 cannot check document time-stamps ("Unimplemented"): OpenSSL's TSP verifier does.
    assert "Unimplemented" in text or sigs[1].valid
    with pikepdf.open(io.BytesIO(out)) as pdf:
        ts = next(f.V for f in pdf.Root.AcroForm.Fields if f.V.get("/Type") == "/DocTimeStamp")
        contents, br = bytes(ts.Contents), [int(v) for v in ts.ByteRange]
    token = contents[:der_length(contents)]
    (tmp_path / "tst.der").write_bytes(token)
    (tmp_path / "range.bin").write_bytes(out[br[0]:br[0] + br[1]] + out[br[2]:br[2] + br[3]])
    import subprocess

    proc = subprocess.run(["openssl", "ts", "-verify", "-token_in", "-in", str(tmp_path / "tst.der"), "-data",
                           str(tmp_path / "range.bin"), "-CAfile", str(pki.ca_pem)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Verification: OK" in proc.stdout, proc.stdout + proc.stderr


def test_blt_without_validation_context_is_refused(signer: ServerSigner, pdf5: bytes, tsa_url: str) -> None:
    with pytest.raises(PdfSigningError):
        sign_pdf(pdf5, signer, level="B-LT", tsa_url=tsa_url)


def test_revoked_signer_is_rejected(tmp_path: Path, pki: Pki, pdf5: bytes) -> None:
    from parafe.signing.keys import load_signer

    from .conftest import P12_PASSWORD

    revoked = load_signer(pki.revoked.p12, P12_PASSWORD)
    out = sign_pdf(pdf5, revoked)
    report = verify_pdf(out, [pki.ca_pem], crls=[pki.crl_pem])
    assert not report.valid, report.to_text()
    assert report.signatures[0].revoked, report.to_text()
    assert verify_pdf(out, [pki.ca_pem]).valid  # without the CRL, revocation is unknown (soft-fail)


def test_untrusted_chain_is_rejected(pki: Pki, signer: ServerSigner, pdf5: bytes) -> None:
    out = sign_pdf(pdf5, signer)
    report = verify_pdf(out, [pki.other_ca.cert_pem])
    assert not report.valid
    assert report.signatures[0].intact
    assert not report.signatures[0].trusted


def test_unsigned_pdf_is_not_valid(pki: Pki, pdf5: bytes) -> None:
    report = verify_pdf(pdf5, [pki.ca_pem])
    assert not report.valid
    assert report.errors
    assert report.to_dict()["valid"] is False


def test_encrypted_pdfs(tmp_path: Path, pki: Pki, signer: ServerSigner, pdf5: bytes) -> None:
    def encrypt(allow: pikepdf.Permissions) -> bytes:
        buf = io.BytesIO()
        with pikepdf.open(io.BytesIO(pdf5)) as pdf:
            pdf.save(buf, encryption=pikepdf.Encryption(owner="proprio", user="", allow=allow))
        return buf.getvalue()

    locked = encrypt(pikepdf.Permissions(modify_annotation=False, modify_form=False, modify_other=False))
    with pytest.raises(PdfProtectedError):
        sign_pdf(locked, signer)
    bulk = BulkPdfSigner(signer)
    with pytest.raises(PdfProtectedError):
        bulk.sign_one(locked)
    open_doc = encrypt(pikepdf.Permissions())
    out = bulk.sign_one(open_doc)  # falls back to pyHanko, which handles the encryption
    assert bulk.fast_count == 0
    assert bulk.fallback_count == 1
    statuses = pyhanko_statuses(out, pki)
    assert statuses[0].bottom_line


def test_certified_pdf_with_no_changes_allowed_is_refused(
    pki: Pki, signer: ServerSigner, signer2: ServerSigner, pdf5: bytes,
) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    w = IncrementalPdfFileWriter(io.BytesIO(pdf5))
    meta = signers.PdfSignatureMetadata(field_name="Cert", certify=True,
                                        docmdp_permissions=fields.MDPPerm.NO_CHANGES)
    certified = signers.sign_pdf(w, meta, signer=signer.pyhanko_signer()).getvalue()
    with pytest.raises(PdfProtectedError):
        sign_pdf(certified, signer2)
    with pytest.raises(PdfProtectedError):
        BulkPdfSigner(signer2).sign_one(certified)


def test_bad_page_number(signer: ServerSigner, pdf5: bytes) -> None:
    with pytest.raises(PdfSigningError):
        sign_pdf(pdf5, signer, stamp=StampSpec.from_cm(1, 1, page=9))
    with pytest.raises(PdfSigningError):
        BulkPdfSigner(signer, stamp=StampSpec.from_cm(1, 1, page=-6)).sign_one(pdf5)


@pytest.mark.parametrize("path", ["pyhanko", "bulk"])
def test_ec_key(tmp_path: Path, pki: Pki, pdf5: bytes, path: str) -> None:
    from parafe.signing.keys import load_signer

    from .conftest import P12_PASSWORD

    ec_signer = load_signer(pki.ec_signer.p12, P12_PASSWORD)
    out = sign_with(path, pdf5, ec_signer, stamp=StampSpec.from_cm(2, 2))
    check_both(tmp_path, out, pki)


def test_bulk_sign_many_reports_each_document(tmp_path: Path, pki: Pki, signer: ServerSigner, pdf5: bytes) -> None:
    bulk = BulkPdfSigner(signer, stamp=StampSpec.from_cm(2, 2, page=-1))
    docs = [("a", pdf5), ("b", b"%PDF-1.4 this is not a pdf"), ("c", make_pdf(1))]
    results = list(bulk.sign_many(docs))
    assert [r.key for r in results] == ["a", "b", "c"]
    assert results[0].ok
    assert results[2].ok
    assert not results[1].ok
    assert isinstance(results[1].error, PdfSigningError)
    for r in (results[0], results[2]):
        assert r.fast_path
        assert r.pdf is not None
        check_both(tmp_path, r.pdf, pki)


def form_pdf(pdf5: bytes, *, indirect: bool) -> bytes:
    """A PDF with an existing form (one text field) whose AcroForm, /Fields and /Annots are indirect or direct."""
    buf = io.BytesIO()
    with pikepdf.open(io.BytesIO(pdf5)) as pdf:
        page = pdf.pages[0]
        field = pdf.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Widget, FT=pikepdf.Name.Tx, T=pikepdf.String("Objet"),
            V=pikepdf.String("Budget 2026"), Rect=[72, 72, 272, 92], P=page.obj))
        annots = pikepdf.Array([field])
        fields = pikepdf.Array([field])
        page.obj.Annots = pdf.make_indirect(annots) if indirect else annots
        acro = pikepdf.Dictionary(Fields=pdf.make_indirect(fields) if indirect else fields)
        pdf.Root.AcroForm = pdf.make_indirect(acro) if indirect else acro
        pdf.save(buf)
    return buf.getvalue()


@pytest.mark.parametrize("indirect", [True, False])
def test_existing_form_fields_are_kept(
    tmp_path: Path, pki: Pki, signer: ServerSigner, pdf5: bytes, indirect: bool,
) -> None:
    data = form_pdf(pdf5, indirect=indirect)
    out = sign_with("bulk", data, signer, stamp=StampSpec.from_cm(12, 2, page=1))
    check_both(tmp_path, out, pki)
    with pikepdf.open(io.BytesIO(out)) as pdf:
        names = [str(f.T) for f in pdf.Root.AcroForm.Fields]
        assert names == ["Objet", "Signature1"]
        assert int(pdf.Root.AcroForm.SigFlags) == 3
        assert len(pdf.pages[0].Annots) == 2
