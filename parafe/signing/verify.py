"""Verification reports: PDF signatures (PAdES/CMS) and signed PES (XAdES enveloped, global or per bordereau).

Public API
----------
``verify_pdf(pdf_bytes, trust_roots, *, crls=(), ocsps=(), allow_fetching=False) -> PdfVerificationReport``
    For each signature: integrity (digest over the ByteRange), cryptographic validity, chain to a trusted root,
    revocation (from ``crls``/``ocsps``, the document's DSS, or fetched when ``allow_fetching``), the signature
    time-stamp, the modifications made after signing, and the PAdES level reached (B-B, B-T, B-LT, B-LTA; "CMS"
    for non-PAdES ``adbe.pkcs7.detached``). ``report.valid`` is the "Signature validée" / "signature rejetée"
    decision of the spec: at least one signature, and every signature intact, valid, trusted, not revoked,
    with a valid time-stamp when it has one, and no disallowed change after it.
``verify_pes(xml_bytes, trust_roots, *, crls=()) -> PesVerificationReport``
    Re-exported from :mod:`parafe.signing.pes_verify` (see there).

``trust_roots`` is anything :func:`parafe.signing.trust.load_certificates` accepts (paths, PEM/DER bytes,
certificate objects) or a ready ``pyhanko_certvalidator.ValidationContext``. Reports are dataclasses with
``to_dict()`` (JSON-ready) and ``to_text()`` (French, for operators).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import pdf_embedded
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator import ValidationContext

from parafe.signing._aio import run_sync
from parafe.signing.errors import VerificationInputError
from parafe.signing.trust import TrustInput, load_certificates, load_crls, make_validation_context

__all__ = [
    "PdfSignatureReport",
    "PdfVerificationReport",
    "TimestampReport",
    "verify_pdf",
    "verify_pes",
]

_KEY_USAGE = KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dn(cert: Any, which: str) -> str:
    """RFC 4514 subject or issuer (``CN=...,O=...,C=FR``) of an asn1crypto certificate."""
    try:
        crypto_cert = x509.load_der_x509_certificate(cert.dump())
        return str(getattr(crypto_cert, which).rfc4514_string())
    except ValueError:  # pragma: no cover - undecodable name
        return str(getattr(cert, which).human_friendly)


def _cn(cert: Any) -> str:
    try:
        cn = cert.subject.native.get("common_name")
    except AttributeError:  # pragma: no cover
        cn = None
    if isinstance(cn, list):
        cn = cn[0]
    return str(cn) if cn else _dn(cert, "subject")


@dataclass
class TimestampReport:
    """The RFC 3161 token attached to a signature (B-T and above)."""

    time: str | None
    tsa: str | None
    intact: bool
    valid: bool
    trusted: bool

    @property
    def ok(self) -> bool:
        return self.intact and self.valid and self.trusted


@dataclass
class PdfSignatureReport:
    """One signature of a PDF."""

    field_name: str
    kind: str  # "signature" or "document-timestamp"
    subfilter: str
    signer: str
    signer_subject: str
    issuer: str
    serial: str
    signing_time: str | None
    intact: bool
    valid: bool
    trusted: bool
    revoked: bool
    coverage: str
    modification_level: str | None
    docmdp_ok: bool | None
    level: str
    timestamp: TimestampReport | None = None
    ltv_ok: bool | None = None
    reason: str | None = None
    location: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class PdfVerificationReport:
    """All signatures of a PDF and the overall decision."""

    signatures: list[PdfSignatureReport]
    has_dss: bool
    errors: list[str] = field(default_factory=list)
    kind: str = "pdf"

    @property
    def valid(self) -> bool:
        sigs = [s for s in self.signatures if s.kind == "signature"]
        return bool(sigs) and not self.errors and all(s.ok for s in self.signatures)

    @property
    def history_label(self) -> str:
        """The history state of the spec: "Signature validée" or "signature rejetée" (lower-case s)."""
        return "Signature validée" if self.valid else "signature rejetée"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["valid"] = self.valid
        for sig, obj in zip(data["signatures"], self.signatures, strict=True):
            sig["ok"] = obj.ok
        return data

    def to_text(self) -> str:
        lines = [f"Document PDF : {len(self.signatures)} signature(s) — "
                 f"{'VALIDE' if self.valid else 'NON VALIDE'}"]
        for err in self.errors:
            lines.append(f"  ! {err}")
        for s in self.signatures:
            lines.append(f"- {s.field_name} ({s.kind}, {s.level}) : {s.signer} — {'OK' if s.ok else 'REJETÉE'}")
            lines.append(f"    émetteur : {s.issuer} ; signée le : {s.signing_time or 'inconnu'}")
            lines.append(f"    intègre : {_yn(s.intact)} ; valide : {_yn(s.valid)} ; "
                         f"approuvée : {_yn(s.trusted)} ; révoquée : {_yn(s.revoked)} ; couverture : {s.coverage}")
            if s.timestamp is not None:
                lines.append(f"    horodatage : {s.timestamp.time} par {s.timestamp.tsa} — "
                             f"{'valide' if s.timestamp.ok else 'NON VALIDE'}")
            for err in s.errors:
                lines.append(f"    ! {err}")
        return "\n".join(lines)


def _yn(value: bool | None) -> str:
    return "?" if value is None else ("oui" if value else "non")


def verify_pdf(
    pdf: bytes,
    trust_roots: TrustInput,
    *,
    crls: Iterable[Any] = (),
    ocsps: Iterable[Any] = (),
    allow_fetching: bool = False,
) -> PdfVerificationReport:
    """Verify every signature of ``pdf``; see the module docstring."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        embedded = list(reader.embedded_regular_signatures) + list(reader.embedded_timestamp_signatures)
    except (PdfError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise VerificationInputError(f"PDF illisible : {exc}") from exc
    embedded.sort(key=lambda s: s.signed_revision)
    crl_list = load_crls(crls)
    roots = None if isinstance(trust_roots, ValidationContext) else load_certificates(trust_roots or ())

    def new_context() -> ValidationContext:
        if isinstance(trust_roots, ValidationContext):
            return trust_roots
        return make_validation_context(roots, crls=crl_list, ocsps=ocsps, allow_fetching=allow_fetching)

    dss = None
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except (PdfError, KeyError, ValueError, TypeError, NoDSSFoundError):
        dss = None
    report = PdfVerificationReport(signatures=[], has_dss=dss is not None)
    if not embedded:
        report.errors.append("Le document ne contient aucune signature.")
    doc_ts_revisions = [s.signed_revision for s in embedded if s.sig_object_type == "/DocTimeStamp"]
    for sig in embedded:
        try:
            report.signatures.append(_verify_one(sig, new_context, dss, roots, crl_list, doc_ts_revisions))
        except Exception as exc:  # a malformed signature must not abort the report
            report.signatures.append(PdfSignatureReport(
                field_name=str(sig.field_name), kind="signature", subfilter="?", signer="?", signer_subject="?",
                issuer="?", serial="?", signing_time=None, intact=False, valid=False, trusted=False,
                revoked=False, coverage="?", modification_level=None, docmdp_ok=None, level="?",
                errors=[f"Signature illisible : {type(exc).__name__} {exc}"]))
    return report


def _verify_one(
    sig: pdf_embedded.EmbeddedPdfSignature,
    new_context: Any,
    dss: DocumentSecurityStore | None,
    roots: list[Any] | None,
    crls: list[Any],
    doc_ts_revisions: list[int],
) -> PdfSignatureReport:
    is_doc_ts = sig.sig_object_type == "/DocTimeStamp"
    vc = new_context()
    if is_doc_ts:
        status: Any = run_sync(pdf_embedded.async_validate_pdf_timestamp(sig, validation_context=vc))
    else:
        status = run_sync(pdf_embedded.async_validate_pdf_signature(
            sig, signer_validation_context=vc, ts_validation_context=new_context(),
            key_usage_settings=_KEY_USAGE))
    cert = status.signing_cert
    sig_obj = sig.sig_object
    subfilter = str(sig_obj.get("/SubFilter", "")).lstrip("/")
    ts_report = None
    ts_status = getattr(status, "timestamp_validity", None)
    if ts_status is not None:
        ts_report = TimestampReport(
            time=_iso(ts_status.timestamp), tsa=_cn(ts_status.signing_cert) if ts_status.signing_cert else None,
            intact=bool(ts_status.intact), valid=bool(ts_status.valid), trusted=bool(ts_status.trusted))
    signing_time = getattr(status, "signer_reported_dt", None)
    if signing_time is None and "/M" in sig_obj:
        try:
            from pyhanko.pdf_utils.generic import parse_pdf_date

            signing_time = parse_pdf_date(str(sig_obj["/M"]))
        except (ValueError, PdfError):
            signing_time = None
    if is_doc_ts:
        signing_time = status.timestamp
    later_doc_ts = any(rev > sig.signed_revision for rev in doc_ts_revisions)
    level = _pades_level(subfilter, is_doc_ts, ts_report is not None, dss, sig.signed_revision, later_doc_ts)
    ltv_ok = None
    if level in ("B-LT", "B-LTA") and dss is not None and roots is not None:
        ltv_ok = _offline_ltv_check(sig, dss, roots, crls)
    coverage = status.coverage.name if getattr(status, "coverage", None) is not None else "?"
    mod_level = status.modification_level.name if getattr(status, "modification_level", None) else None
    docmdp_ok = getattr(status, "docmdp_ok", None)
    report = PdfSignatureReport(
        field_name=str(sig.field_name),
        kind="document-timestamp" if is_doc_ts else "signature",
        subfilter=subfilter,
        signer=_cn(cert),
        signer_subject=_dn(cert, "subject"),
        issuer=_dn(cert, "issuer"),
        serial=format(cert.serial_number, "x"),
        signing_time=_iso(signing_time),
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        revoked=bool(status.revoked),
        coverage=coverage,
        modification_level=mod_level,
        docmdp_ok=docmdp_ok,
        level=level,
        timestamp=ts_report,
        ltv_ok=ltv_ok,
        reason=str(sig_obj["/Reason"]) if "/Reason" in sig_obj else None,
        location=str(sig_obj["/Location"]) if "/Location" in sig_obj else None,
    )
    if not status.intact:
        report.errors.append("Le contenu signé a été modifié (empreinte incorrecte).")
    elif not status.valid:
        report.errors.append("La valeur de signature est invalide.")
    if status.revoked:
        report.errors.append("Le certificat du signataire est révoqué.")
    elif status.intact and status.valid and not status.trusted:
        report.errors.append("La chaîne de certification n'aboutit pas à une autorité approuvée.")
    if ts_report is not None and not ts_report.ok:
        report.errors.append("L'horodatage de la signature est invalide ou non approuvé.")
    if docmdp_ok is False or (not is_doc_ts and not status.bottom_line and status.intact and status.valid
                              and status.trusted and (ts_report is None or ts_report.ok)):
        report.errors.append("Le document a subi après la signature des modifications non autorisées.")
    if ltv_ok is False:
        report.errors.append("Les informations de validation (DSS) ne suffisent pas à valider la signature.")
    return report


def _pades_level(
    subfilter: str, is_doc_ts: bool, has_ts: bool, dss: DocumentSecurityStore | None, revision: int,
    later_doc_ts: bool,
) -> str:
    if is_doc_ts:
        return "DocTimeStamp"
    if subfilter != "ETSI.CAdES.detached":
        return "CMS"
    if not has_ts:
        return "B-B"
    if dss is None or not (dss.crls or dss.ocsps):
        return "B-T"
    return "B-LTA" if later_doc_ts else "B-LT"


def _offline_ltv_check(
    sig: pdf_embedded.EmbeddedPdfSignature, dss: DocumentSecurityStore, roots: list[Any], crls: list[Any]
) -> bool:
    """Does the DSS alone (no fetching, revocation required) validate the signer and its time-stamp?"""
    kwargs = {"trust_roots": roots, "allow_fetching": False, "revocation_mode": "hard-fail"}
    try:
        vc = dss.as_validation_context(kwargs)
        ts_vc = dss.as_validation_context(kwargs)
        status = run_sync(pdf_embedded.async_validate_pdf_signature(
            sig, signer_validation_context=vc, ts_validation_context=ts_vc, key_usage_settings=_KEY_USAGE,
            skip_diff=True))
    except Exception:
        return False
    return bool(status.bottom_line)


def verify_pes(xml: bytes, trust_roots: TrustInput, **kwargs: Any) -> Any:
    """Verify a signed PES; see :func:`parafe.signing.pes_verify.verify_pes` (same keyword arguments)."""
    from parafe.signing.pes_verify import verify_pes as _verify_pes

    return _verify_pes(xml, trust_roots, **kwargs)
