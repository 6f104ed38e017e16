"""Signature verification in the workflow: office signatures submitted by a signer, the verification step, and
the verification reports kept with each document.

- :func:`check_office_signature` — a detached XAdES submitted for a BUREAUTIQUE_XML document is accepted only
  if its reference digest matches the exact stored document (and names it), its SignatureValue and signed
  properties hold, its SigningCertificate designates the certificate that signed, that certificate is within
  its validity period, chains to the configured trust store and belongs to the signer of the step (bound to
  their account, :mod:`parafe.workflow.certificates`). Each refusal is a catalogue error naming its
  reason (codes 230-234, or 195 for a broken signature).
- :func:`check_pdf_signer` — the new signature of a signed PDF submitted by a signer is theirs too (232).
- :func:`verify_document` — the verdict of the verification step for the document's current version (PDF:
  every PAdES/CMS signature; PES: every enveloped XAdES; office document: its detached XAdES).
- :func:`keep_report` / :func:`attach_report` — the verdict is written to the blob store as a JSON report and
  referenced from ``Document.extra["verifications"]`` (a list, oldest first: ``report_sha256``, ``valid``,
  ``kind``, ``source``, ``step``, ``at``). The blob sweeper keeps every sha256 found in ``extra``.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import Document
from parafe.domain.errors import E, ParafeError
from parafe.signing.errors import SigningError
from parafe.signing.keys import certificate_display_name
from parafe.signing.xades import XadesVerificationReport, verify_xades_detached
from parafe.workflow.certificates import owned_by
from parafe.workflow.signatures import trust_roots

KIND_LABELS = {"pdf": "signature PAdES du PDF", "pes": "signature XAdES du PES",
               "xades-detached": "signature XAdES détachée"}


@dataclass
class Verdict:
    """The outcome of one verification: what was verified, whether it holds, the French text, the report."""

    kind: str  # pdf | pes | xades-detached
    valid: bool
    text: str
    report: dict[str, Any]
    verified_sha256: str | None = None
    signature_sha256: str | None = None


def _nfc(value: str | None) -> str:
    return unicodedata.normalize("NFC", value or "")


def _day(value: str | None) -> str:
    if not value:
        return "?"
    return datetime.fromisoformat(value).strftime("%d/%m/%Y")


def known_crls(ctx: AppContext) -> list[Any]:
    """The CRL of the trust store (``PARAFE_CLIENT_CRL``, else the dev CA's ``crl.pem``) when there is one."""
    path = ctx.settings.crl_path
    return [path] if path is not None and path.exists() else []


def verify_office(ctx: AppContext, document: bytes, signature_xml: bytes, name: str) -> XadesVerificationReport:
    """Verify a detached XAdES over ``document`` (named ``name``) against the trust store; a signature that names
    another file than ``name`` is reported as such (``report.errors``). Raises ``SIGNED_DOCUMENT_INVALID`` when
    the file is not an XML signature at all."""
    if not signature_xml.lstrip().startswith(b"<"):
        raise ParafeError(E.SIGNED_DOCUMENT_INVALID, reason="une signature XAdES détachée est attendue")
    try:
        report = verify_xades_detached(signature_xml, document, trust_roots(ctx), crls=known_crls(ctx))
    except SigningError as exc:
        raise ParafeError(E.SIGNED_DOCUMENT_INVALID, reason="signature XAdES illisible", detail=str(exc)) from exc
    if report.document is not None and _nfc(report.document) != _nfc(name):
        report.errors.insert(0, f"La signature porte sur le fichier « {report.document} », pas sur « {name} ».")
    return report


def refusal(report: XadesVerificationReport, name: str) -> ParafeError | None:
    """The catalogue error refusing ``report`` (None when it is valid): 230 altered document, 231 another file,
    234 expired certificate, 233 unknown CA, 195 for a broken or revoked signature."""
    signed = report.document
    if signed is not None and _nfc(signed) != _nfc(name):
        return ParafeError(E.SIGNATURE_OTHER_FILE, signed=signed, name=name, detail=report.to_text())
    failure = report.failure
    if failure is None:
        return None
    if failure == "document":
        if signed is None:
            return ParafeError(E.SIGNED_DOCUMENT_INVALID, reason="la signature ne référence aucun document",
                               detail=report.to_text())
        return ParafeError(E.SIGNATURE_DOCUMENT_ALTERED, name=name, detail=report.to_text())
    if failure == "expired":
        return ParafeError(E.SIGNATURE_CERTIFICATE_EXPIRED, start=_day(report.not_before), end=_day(report.not_after),
                           detail=report.to_text())
    if failure == "untrusted":
        return ParafeError(E.SIGNATURE_UNKNOWN_CA, detail=report.to_text())
    if failure == "revoked":
        return ParafeError(E.SIGNED_DOCUMENT_INVALID, reason="le certificat de signature est révoqué",
                           detail=report.to_text())
    first = report.errors[0].rstrip(". ") if report.errors else "signature invalide"
    return ParafeError(E.SIGNED_DOCUMENT_INVALID, reason=first[0].lower() + first[1:], detail=report.to_text())


def check_office_signature(ctx: AppContext, session: Session, document: bytes, signature_xml: bytes, name: str,
                           user_id: int, email: str) -> XadesVerificationReport:
    """Accept the detached XAdES ``signature_xml`` of the office document ``document`` (named ``name``) by the
    signer ``user_id`` / ``email``, or raise the catalogue error naming the reason (see the module docstring)."""
    report = verify_office(ctx, document, signature_xml, name)
    error = refusal(report, name)
    if error is not None:
        raise error
    assert report.certificate_pem is not None
    cert = x509.load_pem_x509_certificate(report.certificate_pem.encode("ascii"))
    if not owned_by(session, user_id, email, cert):
        raise ParafeError(E.SIGNATURE_FOREIGN_CERTIFICATE, holder=certificate_display_name(cert),
                          detail=f"certificate {cert.subject.rfc4514_string()} not bound to user {user_id}")
    return report


def check_pdf_signer(session: Session, signed_pdf: bytes, user_id: int, email: str) -> None:
    """The newest signature of ``signed_pdf`` (already verified: one new valid signature of the current version)
    must have been made with a certificate of the signer of the step, else ``SIGNATURE_FOREIGN_CERTIFICATE``."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    embedded = sorted(PdfFileReader(io.BytesIO(signed_pdf), strict=False).embedded_regular_signatures,
                      key=lambda sig: sig.signed_revision)
    if not embedded:
        raise ParafeError(E.SIGNED_DOCUMENT_INVALID, reason="aucune signature dans le PDF")
    cert = x509.load_der_x509_certificate(embedded[-1].signer_cert.dump())
    if not owned_by(session, user_id, email, cert):
        raise ParafeError(E.SIGNATURE_FOREIGN_CERTIFICATE, holder=certificate_display_name(cert),
                          detail=f"certificate {cert.subject.rfc4514_string()} not bound to user {user_id}")


def office_verdict(report: XadesVerificationReport, *, name: str, verified_sha256: str | None = None,
                   signature_sha256: str | None = None) -> Verdict:
    error = refusal(report, name)
    text = report.to_text()
    if error is not None:
        text = f"{error.message}\n{text}"
    return Verdict("xades-detached", error is None, text, report.to_dict(), verified_sha256, signature_sha256)


def verify_document(ctx: AppContext, document: Document) -> Verdict:
    """The verification step's verdict on ``document``'s current version (never raises on a bad input: an
    unreadable file is an invalid verdict)."""
    current = document.signed_blob_sha256 or document.blob_sha256
    data = ctx.store.read_bytes(current)
    roots = trust_roots(ctx)
    kind = {"pdf": "pdf", "pes": "pes"}.get(document.kind, "xades-detached")
    try:
        if document.kind == "pdf":
            from parafe.signing.verify import verify_pdf

            pdf = verify_pdf(data, roots)
            return Verdict(kind, pdf.valid, pdf.to_text(), pdf.to_dict(), current)
        if document.kind == "pes":
            from parafe.signing.pes_verify import verify_pes

            pes = verify_pes(data, roots, huge_tree=True)
            return Verdict(kind, pes.valid, pes.to_text(), pes.to_dict(), current)
        if document.signature_blob_sha256 is None:
            return Verdict(kind, False, "Aucune signature détachée n'accompagne le document.", {}, current)
        signature = ctx.store.read_bytes(document.signature_blob_sha256)
        report = verify_office(ctx, data, signature, document.name)
        return office_verdict(report, name=document.name, verified_sha256=current,
                              signature_sha256=document.signature_blob_sha256)
    except (SigningError, ParafeError, ValueError) as exc:
        message = exc.message if isinstance(exc, ParafeError) else str(exc)
        return Verdict(kind, False, f"Vérification impossible : {message}", {}, current,
                       document.signature_blob_sha256)


def trusted_subjects(ctx: AppContext) -> list[str]:
    """The subjects of the trust store's certificates (what the report says it trusted)."""
    from parafe.signing.trust import load_certificates

    try:
        return [x509.load_der_x509_certificate(c.dump()).subject.rfc4514_string()
                for c in load_certificates(trust_roots(ctx))]
    except (OSError, ValueError):
        return []


def keep_report(ctx: AppContext, verdict: Verdict, *, document_id: int, name: str, source: str,
                step: int | None) -> dict[str, Any]:
    """Write the JSON report of ``verdict`` to the blob store; returns the entry to add with
    :func:`attach_report` (in the transaction that records the verdict)."""
    at = datetime.now(UTC).isoformat()
    body = {
        "document_id": document_id, "document_name": name, "kind": verdict.kind, "valid": verdict.valid,
        "verdict": "Signature validée" if verdict.valid else "signature rejetée", "source": source,
        "step": step, "checked_at": at, "verified_sha256": verdict.verified_sha256,
        "signature_sha256": verdict.signature_sha256,
        "trust_store": trusted_subjects(ctx), "text": verdict.text, "report": verdict.report,
    }
    sha = ctx.store.put_bytes(json.dumps(body, ensure_ascii=False, indent=1, default=str).encode()).sha256
    return {"report_sha256": sha, "valid": verdict.valid, "kind": verdict.kind, "source": source, "step": step,
            "at": at}


def attach_report(document: Document, entry: dict[str, Any]) -> None:
    """Reference a kept report from ``document.extra["verifications"]``."""
    extra = dict(document.extra or {})
    extra["verifications"] = [*list(extra.get("verifications") or []), entry]
    document.extra = extra


def reports_of(ctx: AppContext, document: Document) -> list[dict[str, Any]]:
    """The verification reports kept with ``document``, oldest first (parsed JSON)."""
    return [json.loads(ctx.store.read_bytes(e["report_sha256"]))
            for e in (document.extra or {}).get("verifications") or [] if e.get("report_sha256")]


def history_comment(verdict: Verdict) -> str:
    """The history entry's comment: the verdict, then the verifier's text."""
    label = KIND_LABELS.get(verdict.kind, "signature")
    head = (f"Vérification de la {label} : valide." if verdict.valid
            else f"Vérification de la {label} : rejetée.")
    return f"{head}\n{verdict.text}"[:4000]
