"""Detached XAdES signatures of office documents (BUREAUTIQUE_XML circuits).

Public API
----------
``sign_xades_detached(doc_bytes, filename, signer, *, mime_type=None) -> (signature_xml_bytes, zip_bytes)``
    The signature file (``<filename>.xades.xml``) is a ``ds:Signature`` (XAdES 1.3.2, baseline B-B: SigningTime,
    SigningCertificateV2, DataObjectFormat) with a Reference whose URI is the document's file name
    (percent-encoded) and whose digest is the SHA-256 of the document bytes (no transform: the document is
    binary). The ZIP holds the document and the signature side by side, so that
    ``xmlsec1 --verify <filename>.xades.xml`` works once it is unpacked.
``prepare_xades(doc_bytes, filename, certificate, chain) -> PreparedXades`` / ``finish_xades(prepared, value)``
    The same in two phases for remote signing: ``prepared.to_sign`` is the canonical SignedInfo (RSA-SHA256).
``verify_xades_detached(signature_xml, document, trust_roots, *, crls=()) -> XadesVerificationReport``
    Digest of the document (exactly one external reference), SignatureValue, signed properties,
    SigningCertificate(V2) = the certificate whose key made the SignatureValue, validity period of that
    certificate and its chain to ``trust_roots``. ``report.failure`` names the first reason of a refusal
    (``document``, ``signature``, ``expired``, ``revoked``, ``untrusted``); who the certificate belongs to is the
    caller's business (the workflow checks it is bound to the signer's account).
"""

from __future__ import annotations

import base64
import hashlib
import io
import mimetypes
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from parafe.signing.errors import VerificationInputError, XmlSigningError
from parafe.signing.keys import ServerSigner, certificate_display_name
from parafe.signing.trust import TrustInput, validate_certificate_chain
from parafe.signing.xmldsig import (
    DIGESTS,
    DSIG,
    EXC_C14N,
    RSA_SHA256,
    SHA256,
    XADES132,
    ReferenceSpec,
    b64_lines,
    c14n,
    chain_for_keyinfo,
    check_signature,
    digest_b64,
    new_signature,
    parse_untrusted,
    qn,
)

__all__ = [
    "PreparedXades",
    "XadesVerificationReport",
    "finish_xades",
    "prepare_xades",
    "sign_xades_detached",
    "signature_filename",
    "verify_xades_detached",
]

SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"


def signature_filename(filename: str) -> str:
    """Name of the signature file next to ``filename``."""
    return f"{filename}.xades.xml"


@dataclass
class PreparedXades:
    """A detached signature waiting for its RSA-SHA256 value over ``to_sign``."""

    document: bytes
    filename: str
    tree: etree._ElementTree
    to_sign: bytes
    _value_element: etree._Element = field(repr=False)


def sign_xades_detached(
    doc_bytes: bytes, filename: str, signer: ServerSigner, *, mime_type: str | None = None,
    signing_time: datetime | None = None,
) -> tuple[bytes, bytes]:
    """Sign ``doc_bytes`` (named ``filename``); returns (signature XML, ZIP of document + signature)."""
    if signer.key_type != "rsa":
        raise XmlSigningError("La signature XAdES exige une clé RSA (rsa-sha256).")
    prepared = prepare_xades(doc_bytes, filename, signer.certificate, signer.chain, mime_type=mime_type,
                             signing_time=signing_time)
    return finish_xades(prepared, signer.sign_raw(prepared.to_sign, "sha256"))


def prepare_xades(
    doc_bytes: bytes, filename: str, certificate: x509.Certificate, chain: Sequence[x509.Certificate] = (), *,
    mime_type: str | None = None, signing_time: datetime | None = None,
) -> PreparedXades:
    """Lay out the detached signature of ``doc_bytes``; see :class:`PreparedXades`."""
    if not filename or "/" in filename or "\\" in filename or "\x00" in filename:
        raise XmlSigningError("Nom de fichier invalide pour une signature détachée.")
    when = (signing_time or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    sig_id = "xades-" + hashlib.sha256(doc_bytes + when.isoformat().encode()).hexdigest()[:16]
    ref_id = f"{sig_id}-ref-doc"
    sp_id = f"{sig_id}-signedprops"
    parts = new_signature(
        sig_id,
        [ReferenceSpec(quote(filename), (), id=ref_id, digest=digest_b64(doc_bytes)),
         ReferenceSpec(f"#{sp_id}", (EXC_C14N,), type=SIGNED_PROPERTIES_TYPE)],
        chain_for_keyinfo(certificate, chain), signature_method=RSA_SHA256, c14n_method=EXC_C14N,
        sv_id=f"{sig_id}-sigvalue")
    tree = etree.ElementTree(parts.signature)
    mime = mime_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    sp = _xades132_properties(parts.object, sig_id, sp_id, ref_id, certificate, when, mime)
    parts.digest_values[1].text = digest_b64(c14n(sp, EXC_C14N))
    return PreparedXades(doc_bytes, filename, tree, c14n(parts.signed_info, EXC_C14N), parts.signature_value)


def finish_xades(prepared: PreparedXades, signature_value: bytes) -> tuple[bytes, bytes]:
    """Insert the signature value; returns (signature XML, ZIP of document + signature)."""
    prepared._value_element.text = b64_lines(signature_value)
    sig_xml = etree.tostring(prepared.tree, xml_declaration=True, encoding="UTF-8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(prepared.filename, prepared.document)
        zf.writestr(signature_filename(prepared.filename), sig_xml)
    return sig_xml, buf.getvalue()


def _xades132_properties(
    obj: etree._Element, sig_id: str, sp_id: str, ref_id: str, cert: x509.Certificate, when: datetime, mime: str
) -> etree._Element:
    def sub(parent: etree._Element, local: str, text: str | None = None, ns: str = XADES132) -> etree._Element:
        el = etree.SubElement(parent, qn(ns, local))
        if text is not None:
            el.text = text
        return el

    der = cert.public_bytes(serialization.Encoding.DER)
    qp = etree.SubElement(obj, qn(XADES132, "QualifyingProperties"), nsmap={"xades": XADES132})
    qp.set("Target", f"#{sig_id}")
    sp = sub(qp, "SignedProperties")
    sp.set("Id", sp_id)
    ssp = sub(sp, "SignedSignatureProperties")
    sub(ssp, "SigningTime", when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    cert_el = sub(sub(ssp, "SigningCertificateV2"), "Cert")
    cd = sub(cert_el, "CertDigest")
    sub(cd, "DigestMethod", ns=DSIG).set("Algorithm", SHA256)
    sub(cd, "DigestValue", base64.b64encode(hashlib.sha256(der).digest()).decode("ascii"), ns=DSIG)
    asn1_cert = asn1_x509.Certificate.load(der)
    issuer_serial = tsp.IssuerSerial({
        "issuer": [asn1_x509.GeneralName(name="directory_name", value=asn1_cert.issuer)],
        "serial_number": asn1_cert.serial_number,
    })
    sub(cert_el, "IssuerSerialV2", base64.b64encode(issuer_serial.dump()).decode("ascii"))
    dof = sub(sub(sp, "SignedDataObjectProperties"), "DataObjectFormat")
    dof.set("ObjectReference", f"#{ref_id}")
    sub(dof, "MimeType", mime)
    return sp


# --- verification ---------------------------------------------------------------------------------------------
@dataclass
class XadesVerificationReport:
    """Result of verifying a detached XAdES signature against its document."""

    document: str | None
    signer: str | None
    signer_subject: str | None
    issuer: str | None
    signing_time: str | None
    document_digest_ok: bool
    properties_digest_ok: bool
    signature_value_ok: bool
    signing_certificate_ok: bool | None
    chain_trusted: bool
    revoked: bool
    chain_error: str | None
    errors: list[str] = field(default_factory=list)
    kind: str = "xades-detached"
    certificate_expired: bool = False  # outside its validity period at ``checked_at``
    not_before: str | None = None
    not_after: str | None = None
    checked_at: str | None = None
    certificate_pem: str | None = None  # the certificate whose key made the SignatureValue
    structure_ok: bool = True  # one external reference, supported algorithms, certificate present

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def failure(self) -> str | None:
        """Why the signature is refused, first reason in the order of the checks, or None when it is valid:
        ``document`` (the reference digest does not match the given document), ``signature`` (SignatureValue,
        signed properties, SigningCertificate or structure), ``expired`` (certificate outside its validity
        period), ``revoked``, ``untrusted`` (no chain to the trust store)."""
        if self.valid:
            return None
        if not self.document_digest_ok:
            return "document"
        if (not self.structure_ok or not self.signature_value_ok or not self.properties_digest_ok
                or self.signing_certificate_ok is not True):
            return "signature"
        if self.certificate_expired:
            return "expired"
        if self.revoked:
            return "revoked"
        return "untrusted"

    @property
    def history_label(self) -> str:
        return "Signature validée" if self.valid else "signature rejetée"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["valid"] = self.valid
        return data

    def to_text(self) -> str:
        lines = [f"Signature XAdES détachée de « {self.document} » : {self.signer or '?'} — "
                 f"{'VALIDE' if self.valid else 'NON VALIDE'}",
                 f"  signée le {self.signing_time or '?'} ; émetteur : {self.issuer or '?'} ; chaîne approuvée : "
                 f"{'oui' if self.chain_trusted else 'non'}"]
        lines += [f"  ! {e}" for e in self.errors]
        return "\n".join(lines)


def verify_xades_detached(
    signature_xml: bytes, document: bytes, trust_roots: TrustInput, *, crls: Iterable[Any] = (),
    allow_fetching: bool = False, moment: datetime | None = None,
) -> XadesVerificationReport:
    """Verify a detached XAdES signature over ``document``; see the module docstring."""
    try:
        tree = parse_untrusted(signature_xml)
    except XmlSigningError as exc:
        raise VerificationInputError(str(exc)) from exc
    root = tree.getroot()
    sig = root if root.tag == qn(DSIG, "Signature") else root.find(f".//{qn(DSIG, 'Signature')}")
    if sig is None:
        raise VerificationInputError("Aucune signature XML dans le fichier.")
    external: list[str] = []

    def resolver(uri: str) -> bytes | None:
        external.append(unquote(uri))
        return document

    check = check_signature(sig, resolver=resolver)
    cert = check.signer_certificate
    doc_ok = len(external) == 1 and any(
        r.target is None and r.error is None and r.digest_ok for r in check.references)
    props_ok = any(r.target == "SignedProperties" and r.digest_ok for r in check.references)
    errors = list(check.errors)
    structure_ok = not check.errors
    if len(external) != 1:
        structure_ok = False
        errors.append("La signature doit référencer exactement un document externe.")
    for ref in check.references:
        if ref.error and ref.target is None:
            structure_ok = False
            errors.append(f"Référence {ref.uri} : {ref.error}")
    if not doc_ok:
        errors.append("L'empreinte du document ne correspond pas : document modifié ou différent.")
    if not props_ok:
        errors.append("Propriétés XAdES absentes ou modifiées.")
    if not check.signature_value_ok and not check.errors:
        errors.append("La valeur de signature ne correspond pas au certificat du signataire.")
    signing_cert_ok = None
    signing_time = None
    for ns in ("http://uri.etsi.org/01903/v1.3.2#", "http://uri.etsi.org/01903/v1.1.1#"):
        ssp = sig.find(f".//{qn(ns, 'SignedSignatureProperties')}")
        if ssp is None:
            continue
        signing_time = ssp.findtext(qn(ns, "SigningTime"))
        dv = ssp.findtext(f".//{qn(ns, 'CertDigest')}/{qn(DSIG, 'DigestValue')}") or ssp.findtext(
            f".//{qn(ns, 'CertDigest')}/{qn(ns, 'DigestValue')}")
        dm = ssp.find(f".//{qn(ns, 'CertDigest')}/{qn(DSIG, 'DigestMethod')}")
        if dm is None:
            dm = ssp.find(f".//{qn(ns, 'CertDigest')}/{qn(ns, 'DigestMethod')}")
        if cert is not None and dv and dm is not None:
            alg = DIGESTS.get(dm.get("Algorithm", ""))
            der = cert.public_bytes(serialization.Encoding.DER)
            signing_cert_ok = alg is not None and base64.b64encode(
                hashlib.new(alg, der).digest()).decode() == "".join(dv.split())
            if not signing_cert_ok:
                errors.append("SigningCertificate ne désigne pas le certificat qui a signé.")
        break
    if cert is not None and signing_cert_ok is None:
        errors.append("SigningCertificate absent des propriétés signées.")
    trusted, revoked, chain_error = False, False, None
    expired = False
    when = (moment or datetime.now(UTC)).astimezone(UTC)
    if cert is not None:
        expired = not (cert.not_valid_before_utc <= when <= cert.not_valid_after_utc)
        if expired:
            errors.append(f"Le certificat du signataire n'est pas en cours de validité (du "
                          f"{cert.not_valid_before_utc:%d/%m/%Y} au {cert.not_valid_after_utc:%d/%m/%Y}).")
        trusted, revoked, chain_error = validate_certificate_chain(
            cert, check.certificates, trust_roots, crls=crls, allow_fetching=allow_fetching, moment=moment)
        if revoked:
            errors.append("Le certificat du signataire est révoqué.")
        elif not trusted and not expired:
            errors.append(f"Chaîne de certification non approuvée : {chain_error}")
    return XadesVerificationReport(
        document=external[0] if external else None,
        signer=certificate_display_name(cert) if cert is not None else None,
        signer_subject=cert.subject.rfc4514_string() if cert is not None else None,
        issuer=cert.issuer.rfc4514_string() if cert is not None else None,
        signing_time=signing_time,
        document_digest_ok=doc_ok,
        properties_digest_ok=props_ok,
        signature_value_ok=check.signature_value_ok,
        signing_certificate_ok=signing_cert_ok,
        chain_trusted=trusted,
        revoked=revoked,
        chain_error=chain_error,
        errors=errors,
        certificate_expired=expired,
        not_before=cert.not_valid_before_utc.isoformat() if cert is not None else None,
        not_after=cert.not_valid_after_utc.isoformat() if cert is not None else None,
        checked_at=when.isoformat(),
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii") if cert is not None else None,
        structure_ok=structure_ok,
    )
