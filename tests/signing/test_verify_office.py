"""Office documents (the demo ``xml`` circuit, detached XAdES): a signature submitted by the signer is verified
before the document becomes « Signé » — digest over the exact stored document, SignatureValue, SigningCertificate,
certificate of the signer of the step, validity period, chain to the trust store (the dev CA) — and each refusal
names its reason (codes 230-234). The accepted signature is checked again by the ``xmlsec1`` command line."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from parafe.domain.errors import E, ErrorDef, ParafeError
from parafe.domain.states import State
from parafe.services import steps as wf
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import SIGNER, VISA
from parafe.signing.keys import ServerSigner, load_pem_signer, load_signer
from parafe.signing.xades import sign_xades_detached, signature_filename
from tests.workflow.conftest import deposit_file, document, history, run_jobs, state_of, states

from .conftest import xmlsec1_verify

NAME = "Délibération n°12 (conseil).odt"


@pytest.fixture(autouse=True)
def memory_queue(home: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARAFE_QUEUE", "memory")


def office_document(text: str = "Vu le code général des collectivités territoriales") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        zf.writestr("content.xml", f"<office:document-content>{text}</office:document-content>")
        zf.writestr("Pictures/x.bin", os.urandom(1024))
    return buf.getvalue()


def demo_key(ctx: Any, email: str) -> ServerSigner:
    return load_signer(ctx.settings.resolved_home / "demo" / f"{email}.p12", "demo")


def bad_key(ctx: Any, which: str) -> ServerSigner:
    bad = ctx.settings.resolved_home / "demo" / "bad"
    return load_pem_signer((bad / f"{which}.pem").read_bytes(), (bad / f"{which}.key").read_bytes())


def waiting_document(ctx: Any, tmp_path: Path, data: bytes) -> int:
    doc_id = deposit_file(ctx, tmp_path, NAME, data, circuit="xml")
    run_jobs(ctx, until=lambda: state_of(ctx, doc_id) == State.SENT_FOR_SIGN.value)
    return doc_id


def refused(ctx: Any, doc_id: int, signature: bytes, entry: ErrorDef, **params: str) -> ParafeError:
    with pytest.raises(ParafeError) as caught:
        wf.sign(ctx, principal_for_email(ctx, SIGNER), doc_id, signature)
    assert caught.value.code == entry.code, (caught.value.code, caught.value.message, caught.value.detail)
    assert caught.value.message == entry.format(**params)
    held = document(ctx, doc_id)  # nothing half-stored
    assert held.state == State.SENT_FOR_SIGN.value
    assert held.signature_blob_sha256 is None
    assert not (held.extra or {}).get("verifications")
    return caught.value


def test_valid_signature_is_accepted_kept_and_verified_by_xmlsec1(ctx: Any, tmp_path: Path) -> None:
    data = office_document()
    doc_id = waiting_document(ctx, tmp_path, data)
    signature, _ = sign_xades_detached(data, NAME, demo_key(ctx, SIGNER))
    wf.sign(ctx, principal_for_email(ctx, SIGNER), doc_id, signature)
    run_jobs(ctx)
    assert State.SIGNED.value in states(ctx, doc_id)
    signed_entry = next(h for h in history(ctx, doc_id) if h.state == State.SIGNED.value)
    assert signed_entry.user_fullname == "Sophie Signataire"
    held = document(ctx, doc_id)
    stored = ctx.store.read_bytes(held.signature_blob_sha256)
    assert stored == signature
    # the independent validator, on the exact stored document and signature, trusting only the dev CA
    (tmp_path / "check").mkdir()
    (tmp_path / "check" / NAME).write_bytes(ctx.store.read_bytes(held.blob_sha256))
    (tmp_path / "check" / signature_filename(NAME)).write_bytes(stored)
    ok, out = xmlsec1_verify(Path(signature_filename(NAME)), trusted=ctx.settings.ca_bundle, cwd=tmp_path / "check")
    assert ok, out
    assert "SignedInfo References (ok/all): 2/2" in out, out
    # the verification report kept with the document
    (entry,) = held.extra["verifications"]
    assert entry["valid"] is True
    assert entry["source"] == "signature"
    assert entry["kind"] == "xades-detached"
    report = json.loads(ctx.store.read_bytes(entry["report_sha256"]))
    assert report["verdict"] == "Signature validée"
    assert report["document_id"] == doc_id
    assert report["verified_sha256"] == hashlib.sha256(data).hexdigest()
    assert report["report"]["signer"] == "Sophie Signataire"
    assert report["report"]["chain_trusted"] is True
    assert report["trust_store"] == [x509.load_pem_x509_certificate(
        ctx.settings.ca_bundle.read_bytes()).subject.rfc4514_string()]  # the dev CA


def test_tampered_document_is_refused(ctx: Any, tmp_path: Path) -> None:
    data = office_document()
    doc_id = waiting_document(ctx, tmp_path, data)
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0x01
    signature, _ = sign_xades_detached(bytes(tampered), NAME, demo_key(ctx, SIGNER))
    error = refused(ctx, doc_id, signature, E.SIGNATURE_DOCUMENT_ALTERED, name=NAME)
    assert "document a été altéré" in error.message


def test_signature_of_another_file_is_refused(ctx: Any, tmp_path: Path) -> None:
    doc_id = waiting_document(ctx, tmp_path, office_document())
    signature, _ = sign_xades_detached(office_document("Autre arrêté"), "arrêté 2026-14.odt", demo_key(ctx, SIGNER))
    error = refused(ctx, doc_id, signature, E.SIGNATURE_OTHER_FILE, signed="arrêté 2026-14.odt", name=NAME)
    assert "autre fichier" in error.message


def test_signature_with_another_users_certificate_is_refused(ctx: Any, tmp_path: Path) -> None:
    data = office_document()
    doc_id = waiting_document(ctx, tmp_path, data)
    signature, _ = sign_xades_detached(data, NAME, demo_key(ctx, VISA))  # Victor Valideur's own key
    error = refused(ctx, doc_id, signature, E.SIGNATURE_FOREIGN_CERTIFICATE, holder="Victor Valideur")
    assert "n'appartient pas au signataire" in error.message


def test_certificate_of_an_unknown_ca_is_refused(ctx: Any, tmp_path: Path) -> None:
    data = office_document()
    doc_id = waiting_document(ctx, tmp_path, data)
    signature, _ = sign_xades_detached(data, NAME, bad_key(ctx, "unknown-ca"))
    error = refused(ctx, doc_id, signature, E.SIGNATURE_UNKNOWN_CA)
    assert "autorité de certification" in error.message


def test_expired_certificate_is_refused(ctx: Any, tmp_path: Path) -> None:
    data = office_document()
    doc_id = waiting_document(ctx, tmp_path, data)
    key = bad_key(ctx, "expired")
    signature, _ = sign_xades_detached(data, NAME, key)
    cert = key.certificate
    error = refused(ctx, doc_id, signature, E.SIGNATURE_CERTIFICATE_EXPIRED,
                    start=f"{cert.not_valid_before_utc:%d/%m/%Y}", end=f"{cert.not_valid_after_utc:%d/%m/%Y}")
    assert "expiré" in error.message


def test_forged_signature_value_is_refused(ctx: Any, tmp_path: Path) -> None:
    data = office_document()
    doc_id = waiting_document(ctx, tmp_path, data)
    signature, _ = sign_xades_detached(data, NAME, demo_key(ctx, SIGNER))
    start = signature.index(b"<ds:SignatureValue")
    start = signature.index(b">", start) + 1
    forged = signature[:start] + (b"A" if signature[start:start + 1] != b"A" else b"B") + signature[start + 1:]
    with pytest.raises(ParafeError) as caught:
        wf.sign(ctx, principal_for_email(ctx, SIGNER), doc_id, forged)
    assert caught.value.code == E.SIGNED_DOCUMENT_INVALID.code
    assert document(ctx, doc_id).signature_blob_sha256 is None


def test_not_a_signature_is_refused(ctx: Any, tmp_path: Path) -> None:
    doc_id = waiting_document(ctx, tmp_path, office_document())
    for junk in (b"<signature/>", b"<ds:Signature xmlns:ds='http://www.w3.org/2000/09/xmldsig#'/>", b"PK\x03\x04"):
        with pytest.raises(ParafeError) as caught:
            wf.sign(ctx, principal_for_email(ctx, SIGNER), doc_id, junk)
        assert caught.value.code == E.SIGNED_DOCUMENT_INVALID.code, caught.value.message
    assert state_of(ctx, doc_id) == State.SENT_FOR_SIGN.value


def test_revoked_certificate_is_refused(ctx: Any, tmp_path: Path) -> None:
    data = office_document()
    doc_id = waiting_document(ctx, tmp_path, data)
    signature, _ = sign_xades_detached(data, NAME, bad_key(ctx, "revoked"))  # listed in the dev CA's CRL
    refused(ctx, doc_id, signature, E.SIGNED_DOCUMENT_INVALID, reason="le certificat de signature est révoqué")


def test_pdf_signed_with_another_users_certificate_is_refused(ctx: Any, tmp_path: Path) -> None:
    """The same ownership rule for a signed PDF handed to ``sign`` (demo ``bureautique`` circuit, after the visa)."""
    from parafe.signing.pades import sign_pdf
    from tests.fixtures.files import pdf_bytes

    doc_id = deposit_file(ctx, tmp_path, "contrat.pdf", pdf_bytes(), circuit="bureautique")
    run_jobs(ctx)
    wf.approve_visa(ctx, principal_for_email(ctx, VISA), doc_id)
    run_jobs(ctx, until=lambda: state_of(ctx, doc_id) == State.SENT_FOR_SIGN.value)
    original = ctx.store.read_bytes(document(ctx, doc_id).blob_sha256)
    with pytest.raises(ParafeError) as caught:
        wf.sign(ctx, principal_for_email(ctx, SIGNER), doc_id, sign_pdf(original, demo_key(ctx, VISA)))
    assert caught.value.error is E.SIGNATURE_FOREIGN_CERTIFICATE
    assert caught.value.message == E.SIGNATURE_FOREIGN_CERTIFICATE.format(holder="Victor Valideur")
    assert document(ctx, doc_id).signed_blob_sha256 is None
    wf.sign(ctx, principal_for_email(ctx, SIGNER), doc_id, sign_pdf(original, demo_key(ctx, SIGNER)))
    assert State.SIGNED.value in states(ctx, doc_id)
