"""PDF inspection and the write-protection rule (stack-notes §4), on PDFs generated here."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Literal

import pikepdf
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import MDPPerm
from reportlab.pdfgen import canvas

from parafe.domain.errors import E, ParafeError
from parafe.formats.pdf import ensure_signable, inspect_pdf


def _plain_pdf(pages: int = 2) -> bytes:
    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    for i in range(pages):
        c.drawString(100, 750, f"Parafe test page {i + 1}")
        c.showPage()
    c.save()
    return buf.getvalue()


def _save(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


Revision = Literal[2, 3, 4, 5, 6]  # pikepdf.Encryption's R


def _encrypted(tmp_path: Path, name: str, *, user: str = "", allow: pikepdf.Permissions | None = None,
               r: Revision = 6) -> Path:
    src = pikepdf.open(io.BytesIO(_plain_pdf()))
    path = tmp_path / name
    src.save(path, encryption=pikepdf.Encryption(owner="owner-secret", user=user, R=r, metadata=r >= 4, aes=r >= 4,
                                                 allow=allow or pikepdf.Permissions()))
    return path


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> signers.SimpleSigner:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Parafe test signer")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("signer")
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    loaded = signers.SimpleSigner.load(str(folder / "key.pem"), str(folder / "cert.pem"))
    assert loaded is not None
    return loaded


def _signed(signer: signers.SimpleSigner, data: bytes, *, certify: bool, level: MDPPerm | None = None,
            field: str = "Sig1") -> bytes:
    if level is None:
        meta = signers.PdfSignatureMetadata(field_name=field, certify=certify)
    else:
        meta = signers.PdfSignatureMetadata(field_name=field, certify=certify, docmdp_permissions=level)
    out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(data)), meta, signer=signer)
    return out.getvalue()


def test_plain_pdf(tmp_path: Path) -> None:
    info = ensure_signable(_save(tmp_path, "plain.pdf", _plain_pdf(3)))
    assert (info.pages, info.encrypted, info.protected, info.reason, info.docmdp, info.signature_count) == \
        (3, False, False, None, None, 0)


def test_user_password_is_protected(tmp_path: Path) -> None:
    path = _encrypted(tmp_path, "user.pdf", user="secret", allow=pikepdf.Permissions())
    info = inspect_pdf(path)
    assert info.protected
    assert info.encrypted
    assert info.pages == 0
    assert "password" in (info.reason or "")
    with pytest.raises(ParafeError) as err:
        ensure_signable(path)
    assert err.value.error is E.PDF_PROTECTED
    assert err.value.message == "Fichier refusé : PDF protégé en écriture."


@pytest.mark.parametrize("r", [3, 4, 6])
def test_permissions_denied_is_protected(tmp_path: Path, r: Revision) -> None:
    denied = pikepdf.Permissions(modify_annotation=False, modify_form=False, modify_other=False,
                                 modify_assembly=False, extract=True, print_lowres=True, print_highres=True)
    path = _encrypted(tmp_path, "denied.pdf", allow=denied, r=r)
    info = inspect_pdf(path)
    assert info.encrypted
    assert info.protected
    assert info.pages == 2
    with pytest.raises(ParafeError) as err:
        ensure_signable(path)
    assert err.value.error is E.PDF_PROTECTED


def test_owner_password_only_with_all_rights_is_signable(tmp_path: Path) -> None:
    info = ensure_signable(_encrypted(tmp_path, "owner.pdf", allow=pikepdf.Permissions()))
    assert info.encrypted
    assert not info.protected
    assert info.pages == 2


@pytest.mark.parametrize(("form", "annotation", "protected"), [
    (True, False, False),   # may fill (signature) fields
    (False, True, False),   # may annotate
    (False, False, True),   # only "modify other": the measured rule says protected
])
def test_form_or_annotation_right_is_enough(tmp_path: Path, form: bool, annotation: bool, protected: bool) -> None:
    allow = pikepdf.Permissions(modify_form=form, modify_annotation=annotation, modify_other=True)
    assert inspect_pdf(_encrypted(tmp_path, "mixed.pdf", allow=allow)).protected is protected


def test_docmdp_p1_certified_is_protected(tmp_path: Path, signer: signers.SimpleSigner) -> None:
    path = _save(tmp_path, "certified-p1.pdf", _signed(signer, _plain_pdf(), certify=True,
                                                       level=MDPPerm.NO_CHANGES))
    info = inspect_pdf(path)
    assert info.docmdp == 1
    assert info.protected
    assert not info.encrypted
    assert info.signature_count == 1
    with pytest.raises(ParafeError) as err:
        ensure_signable(path)
    assert err.value.error is E.PDF_PROTECTED
    assert "DocMDP" in (err.value.detail or "")


def test_docmdp_p2_certified_is_signable(tmp_path: Path, signer: signers.SimpleSigner) -> None:
    path = _save(tmp_path, "certified-p2.pdf", _signed(signer, _plain_pdf(), certify=True,
                                                       level=MDPPerm.FILL_FORMS))
    info = ensure_signable(path)
    assert info.docmdp == 2
    assert not info.protected
    assert info.signature_count == 1


def test_approval_signatures_are_counted(tmp_path: Path, signer: signers.SimpleSigner) -> None:
    once = _signed(signer, _plain_pdf(), certify=False)
    twice = _signed(signer, once, certify=False, field="Sig2")
    info = ensure_signable(_save(tmp_path, "signed.pdf", twice))
    assert info.signature_count == 2
    assert info.docmdp is None
    assert not info.protected


@pytest.mark.parametrize("data", [
    b"this is not a pdf at all",
    b"%PDF-1.7\n garbage garbage garbage",
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
])
def test_garbage_is_invalid(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(ParafeError) as err:
        inspect_pdf(_save(tmp_path, "garbage.pdf", data))
    assert err.value.error is E.PDF_INVALID


def test_truncated_pdf_is_invalid_or_repaired(tmp_path: Path) -> None:
    data = _plain_pdf()
    path = _save(tmp_path, "cut.pdf", data[: len(data) // 3])
    refused: ParafeError | None = None
    try:
        info = inspect_pdf(path)
    except ParafeError as exc:
        refused = exc
    else:  # qpdf may rebuild what is left; then it must really have pages
        assert info.pages >= 1
    if refused is not None:
        assert refused.error is E.PDF_INVALID


def test_pdf_without_pages_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "empty-doc.pdf"
    pikepdf.new().save(path)
    with pytest.raises(ParafeError) as err:
        inspect_pdf(path)
    assert err.value.error is E.PDF_INVALID


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ParafeError) as err:
        ensure_signable(_save(tmp_path, "empty.pdf", b""))
    assert err.value.error is E.EMPTY_FILE
