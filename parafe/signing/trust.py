"""Trust stores for verification and B-LT signing: certificates, CRLs and pyhanko-certvalidator contexts.

``load_certificates(sources)`` and ``load_crls(sources)`` accept paths, PEM or DER bytes (a PEM blob may hold
several items) and already-parsed objects. ``make_validation_context(trust_roots, crls=..., ocsps=...,
other_certs=..., allow_fetching=False, revocation_mode="soft-fail")`` builds the
``pyhanko_certvalidator.ValidationContext`` used by :mod:`parafe.signing.verify` and by PAdES B-LT.
Fetching CRLs/OCSP over the network is off unless asked for (tests and air-gapped servers).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError, RevokedError

from parafe.signing._aio import run_sync

__all__ = ["TrustInput", "load_certificates", "load_crls", "make_validation_context", "validate_certificate_chain"]

# What callers may pass as a trust store: a ready context, or certificates in any usual form.
TrustInput = ValidationContext | Iterable[Any] | None


def _blobs(source: Any) -> list[bytes]:
    if isinstance(source, (str, Path)):
        data = Path(source).read_bytes()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        raise TypeError(f"unsupported source {type(source).__name__}")
    if pem.detect(data):
        return [der for _, _, der in pem.unarmor(data, multiple=True)]
    return [data]


def load_certificates(sources: Iterable[Any]) -> list[asn1_x509.Certificate]:
    """Certificates from paths, PEM/DER bytes, ``cryptography`` or ``asn1crypto`` objects."""
    out: list[asn1_x509.Certificate] = []
    for src in sources:
        if isinstance(src, asn1_x509.Certificate):
            out.append(src)
        elif isinstance(src, x509.Certificate):
            out.append(asn1_x509.Certificate.load(src.public_bytes(serialization.Encoding.DER)))
        else:
            out.extend(asn1_x509.Certificate.load(b) for b in _blobs(src))
    return out


def load_crls(sources: Iterable[Any]) -> list[asn1_crl.CertificateList]:
    """CRLs from paths, PEM/DER bytes, ``cryptography`` or ``asn1crypto`` objects."""
    out: list[asn1_crl.CertificateList] = []
    for src in sources:
        if isinstance(src, asn1_crl.CertificateList):
            out.append(src)
        elif isinstance(src, x509.CertificateRevocationList):
            out.append(asn1_crl.CertificateList.load(src.public_bytes(serialization.Encoding.DER)))
        else:
            out.extend(asn1_crl.CertificateList.load(b) for b in _blobs(src))
    return out


def make_validation_context(
    trust_roots: TrustInput,
    *,
    crls: Iterable[Any] = (),
    ocsps: Iterable[asn1_ocsp.OCSPResponse | bytes] = (),
    other_certs: Iterable[Any] = (),
    allow_fetching: bool = False,
    revocation_mode: str = "soft-fail",
    moment: datetime | None = None,
) -> ValidationContext:
    """A validation context trusting ``trust_roots`` (a ready context is returned unchanged)."""
    if isinstance(trust_roots, ValidationContext):
        return trust_roots
    roots = load_certificates(trust_roots or ())
    ocsp_list = [o if isinstance(o, asn1_ocsp.OCSPResponse) else asn1_ocsp.OCSPResponse.load(o) for o in ocsps]
    kwargs: dict[str, Any] = {}
    if moment is not None:
        kwargs["moment"] = moment
    return ValidationContext(
        trust_roots=roots,
        other_certs=load_certificates(other_certs),
        crls=load_crls(crls),
        ocsps=ocsp_list,
        allow_fetching=allow_fetching,
        revocation_mode=revocation_mode,
        **kwargs,
    )


def validate_certificate_chain(
    cert: x509.Certificate,
    intermediates: Iterable[x509.Certificate],
    trust_roots: TrustInput,
    *,
    crls: Iterable[Any] = (),
    allow_fetching: bool = False,
    moment: datetime | None = None,
) -> tuple[bool, bool, str | None]:
    """(trusted, revoked, error) for a signing certificate; revocation soft-fail, key usage must allow signing."""
    def to_asn1(c: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))

    vc = make_validation_context(trust_roots, crls=crls, allow_fetching=allow_fetching, moment=moment)
    validator = CertificateValidator(to_asn1(cert), intermediate_certs=[to_asn1(c) for c in intermediates if c != cert],
                                     validation_context=vc)
    try:
        path = run_sync(validator.async_validate_path())
    except RevokedError as exc:
        return False, True, str(exc)
    except (PathBuildingError, PathValidationError) as exc:
        return False, False, str(exc)
    # The validator consults CRLs only for certificates that name a distribution point; a CRL given here by
    # its issuer (the dev CA's certificates name none) is checked directly too.
    leaf = to_asn1(cert)
    issuer = next((c for c in path.iter_certs(include_root=True) if c.subject == leaf.issuer), None)
    if issuer is not None and _listed_in_crls(cert, issuer, crls):
        return False, True, f"certificat révoqué (liste de révocation de {issuer.subject.human_friendly})"
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not (ku.digital_signature or ku.content_commitment):
            return False, False, "usage de clé incompatible avec la signature"
    except x509.ExtensionNotFound:
        pass
    return True, False, None


def _listed_in_crls(cert: x509.Certificate, issuer: asn1_x509.Certificate, crls: Iterable[Any]) -> bool:
    """Whether a CRL of ``crls`` issued and signed by ``issuer`` lists ``cert``'s serial number."""
    issuer_key = x509.load_der_x509_certificate(issuer.dump()).public_key()
    for crl in load_crls(crls):
        parsed = x509.load_der_x509_crl(crl.dump())
        if parsed.issuer.public_bytes() != issuer.subject.dump():
            continue
        try:
            if not parsed.is_signature_valid(issuer_key):  # type: ignore[arg-type]
                continue
        except (TypeError, ValueError):
            continue
        if parsed.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            return True
    return False
