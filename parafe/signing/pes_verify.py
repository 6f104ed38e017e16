"""Verification of incoming signed PES: XAdES 1.1.1 / 1.2.2, Helios policy 1.7 (sha256) and legacy 1.4 (sha1).

Public API
----------
``verify_pes(xml_bytes, trust_roots, *, crls=(), allow_fetching=False, huge_tree=False)
-> PesVerificationReport``

For each ``ds:Signature`` the report says which elements it signs (``Bordereau`` / ``PES_Aller`` and their
``Id``), whether each digest holds, whether the SignatureValue verifies (our own check, cross-checked by
libxmlsec1), who signed (certificate subject, claimed role, signing time), whether the XAdES
SigningCertificate matches that certificate, which signature policy is declared, and whether the certificate
chains to ``trust_roots`` (pyhanko-certvalidator; CRLs from ``crls``; revocation soft-fail).

``integrity_errors(xml_bytes) -> list[str]`` is the deposit's check: what is broken in the signatures, the
chain of trust left out.

``report.mode`` is ``"global"``, ``"per_bordereau"``, ``"mixed"`` or ``"none"``. ``report.valid`` requires at
least one signature, every signature valid and trusted, each signature covering the element that holds it
(enveloped), and, per bordereau, every bordereau signed. ``InfoDematerialisee`` inconsistencies and unknown
policies are reported in ``warnings`` (they do not make a signature invalid; Helios applies its own rules).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from lxml import etree

from parafe.signing.errors import VerificationInputError, XmlSigningError
from parafe.signing.keys import certificate_display_name
from parafe.signing.pes import DOMAINS, PES_NS, POLICY_HASH, POLICY_OID, POLICY_OID_LEGACY
from parafe.signing.trust import TrustInput, validate_certificate_chain
from parafe.signing.xmldsig import (
    DIGESTS,
    DSIG,
    XADES_NAMESPACES,
    build_id_index,
    check_signature,
    parse_untrusted,
    qn,
    register_xmlsec_ids,
    xmlsec_cross_check,
)

__all__ = ["PesSignatureReport", "PesVerificationReport", "integrity_errors", "verify_pes"]

_XADES_VERSIONS = {
    "http://uri.etsi.org/01903/v1.1.1#": "1.1.1",
    "http://uri.etsi.org/01903/v1.2.2#": "1.2.2",
    "http://uri.etsi.org/01903/v1.3.2#": "1.3.2",
}
_POLICIES = {POLICY_OID: "1.7", POLICY_OID_LEGACY: "1.4"}


@dataclass
class SignedElement:
    element: str | None
    id: str | None
    uri: str
    digest_algorithm: str | None
    digest_ok: bool
    error: str | None = None


@dataclass
class PesSignatureReport:
    """One ``ds:Signature`` of the PES."""

    signature_id: str | None
    scope: str  # "global", "bordereau" or "other"
    location: str  # element holding the signature, e.g. "Bordereau#BORD1"
    signed_elements: list[SignedElement]
    signer: str | None
    signer_subject: str | None
    issuer: str | None
    serial: str | None
    signing_time: str | None
    claimed_roles: list[str]
    xades_version: str | None
    policy_id: str | None
    policy_version: str | None  # "1.7", "1.4" or None when unknown
    policy_hash_ok: bool | None
    signature_algorithm: str | None
    digests_ok: bool
    signature_value_ok: bool
    signing_certificate_ok: bool | None
    xmlsec_ok: bool | None
    chain_trusted: bool
    revoked: bool
    chain_error: str | None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class PesVerificationReport:
    """All signatures of a PES and the overall decision."""

    mode: str
    bordereaux: list[str]
    unsigned_bordereaux: list[str]
    signatures: list[PesSignatureReport]
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    kind: str = "pes"

    @property
    def signed(self) -> bool:
        return bool(self.signatures)

    @property
    def valid(self) -> bool:
        return self.signed and not self.errors and all(s.ok for s in self.signatures)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["valid"] = self.valid
        data["signed"] = self.signed
        for sig, obj in zip(data["signatures"], self.signatures, strict=True):
            sig["ok"] = obj.ok
        return data

    def to_text(self) -> str:
        lines = [f"PES : mode de signature {self.mode}, {len(self.signatures)} signature(s), "
                 f"{len(self.bordereaux)} bordereau(x) — {'VALIDE' if self.valid else 'NON VALIDE'}"]
        lines += [f"  ! {e}" for e in self.errors]
        lines += [f"  ~ {w}" for w in self.warnings]
        for s in self.signatures:
            signed = ", ".join(f"{e.element}#{e.id}" + ("" if e.digest_ok else " (EMPREINTE FAUSSE)")
                               for e in s.signed_elements)
            lines.append(f"- {s.signature_id} dans {s.location} : {s.signer or '?'} "
                         f"({', '.join(s.claimed_roles) or 'sans rôle'}) — {'OK' if s.ok else 'REJETÉE'}")
            lines.append(f"    éléments signés : {signed}")
            lines.append(f"    XAdES {s.xades_version or '?'} ; politique {s.policy_version or s.policy_id or '?'} ; "
                         f"signée le {s.signing_time or '?'} ; chaîne approuvée : "
                         f"{'oui' if s.chain_trusted else 'non'}")
            lines += [f"    ! {e}" for e in s.errors]
        return "\n".join(lines)


def verify_pes(
    xml: bytes,
    trust_roots: TrustInput,
    *,
    crls: Iterable[Any] = (),
    allow_fetching: bool = False,
    huge_tree: bool = False,
    moment: datetime | None = None,
    check_chain: bool = True,
    cross_check: bool = True,
) -> PesVerificationReport:
    """Verify every signature of a PES; see the module docstring. ``check_chain=False`` leaves the certificate
    chain out (``chain_trusted`` stays False and is not an error) and ``cross_check=False`` the second opinion
    of libxmlsec1 (``xmlsec_ok`` stays None): what :func:`integrity_errors` needs."""
    try:
        tree = parse_untrusted(xml, huge_tree=huge_tree)
    except XmlSigningError as exc:
        raise VerificationInputError(str(exc)) from exc
    root = tree.getroot()
    crl_list = list(crls)
    index, dups = build_id_index(root)
    bordereaux = [b for dom, _ in DOMAINS for d in root.findall(dom) for b in d.findall("Bordereau")]
    border_ids = [b.get("Id") or f"(bordereau {i + 1} sans Id)" for i, b in enumerate(bordereaux)]
    report = PesVerificationReport(mode="none", bordereaux=border_ids, unsigned_bordereaux=[], signatures=[])
    if root.tag != qn(PES_NS, "PES_Aller"):
        report.errors.append("Le fichier n'est pas un PES_Aller.")
    signatures = list(root.iter(qn(DSIG, "Signature")))
    # Counter-signatures and signatures nested in XAdES properties are not PES signatures.
    signatures = [s for s in signatures if not any(a.tag == qn(DSIG, "Signature") for a in s.iterancestors())]
    if signatures and not dups and cross_check:
        register_xmlsec_ids(root)
    for sig in signatures:
        report.signatures.append(_verify_one(sig, root, index, dups, trust_roots, crl_list, allow_fetching, moment,
                                             check_chain, cross_check))
    scopes = {s.scope for s in report.signatures}
    if not report.signatures:
        report.errors.append("Le fichier PES n'est pas signé.")
    elif scopes == {"global"}:
        report.mode = "global"
        if len(report.signatures) > 1:
            report.errors.append("Plusieurs signatures globales : une seule est admise.")
    elif scopes == {"bordereau"}:
        report.mode = "per_bordereau"
    else:
        report.mode = "mixed"
        report.errors.append("Signatures globale et par bordereau mélangées.")
    if report.mode == "per_bordereau":
        signed_ids = {e.id for s in report.signatures for e in s.signed_elements if e.element == "Bordereau"}
        holders = [b for b in bordereaux if b.find(qn(DSIG, "Signature")) is not None]
        for b, bid in zip(bordereaux, border_ids, strict=True):
            if b not in holders or b.get("Id") not in signed_ids:
                report.unsigned_bordereaux.append(bid)
        if report.unsigned_bordereaux:
            report.errors.append("Bordereau(x) non signé(s) : " + ", ".join(report.unsigned_bordereaux))
        for b in holders:
            if len(b.findall(qn(DSIG, "Signature"))) > 1:
                report.errors.append(f"Le bordereau {b.get('Id')} porte plusieurs signatures.")
    _info_dematerialisee_warnings(root, report)
    return report


def _verify_one(
    sig: etree._Element, root: etree._Element, index: dict[str, etree._Element], dups: set[str],
    trust_roots: TrustInput, crls: list[Any], allow_fetching: bool, moment: datetime | None,
    check_chain: bool = True, cross_check: bool = True,
) -> PesSignatureReport:
    check = check_signature(sig, index, dups)
    parent = sig.getparent()
    parent_name = etree.QName(parent).localname if parent is not None else "?"
    location = f"{parent_name}#{parent.get('Id')}" if parent is not None else "?"
    signed = [SignedElement(r.target, r.target_id, r.uri, r.digest_algorithm, r.digest_ok, r.error)
              for r in check.references]
    data_refs = [e for e in signed if e.element not in ("SignedProperties",)]
    covers_parent = parent is not None and any(
        e.id is not None and index.get(e.id) is parent for e in data_refs)
    if parent is root and covers_parent:
        scope = "global"
    elif parent_name == "Bordereau" and covers_parent:
        scope = "bordereau"
    else:
        scope = "other"
    props = _xades_properties(sig)
    cert = check.signer_certificate
    errors = list(check.errors)
    for ref in check.references:
        if ref.error:
            errors.append(f"Référence {ref.uri} : {ref.error}")
        elif not ref.digest_ok:
            errors.append(f"Empreinte fausse pour {ref.target or ref.uri} {ref.target_id or ''}".rstrip())
    if not check.signature_value_ok and not check.errors:
        errors.append("La valeur de signature ne correspond pas au certificat du signataire.")
    if not covers_parent:
        errors.append("La signature ne couvre pas l'élément qui la contient (signature enveloppée attendue).")
    if props["sp"] is None:
        errors.append("Propriétés XAdES (SignedProperties) absentes.")
    elif not any(e.element == "SignedProperties" and e.digest_ok for e in signed):
        errors.append("Les propriétés XAdES ne sont pas couvertes par la signature.")
    signing_cert_ok = None
    if cert is not None and props["cert_digest"] is not None:
        alg, value = props["cert_digest"]
        der = cert.public_bytes(serialization.Encoding.DER)
        try:
            signing_cert_ok = base64.b64encode(hashlib.new(alg, der).digest()).decode() == value
        except (ValueError, TypeError):
            signing_cert_ok = False
        if not signing_cert_ok:
            errors.append("SigningCertificate ne désigne pas le certificat qui a signé.")
    xmlsec_ok = None
    if cert is not None and check.ok and cross_check:
        xmlsec_ok = xmlsec_cross_check(sig, cert, register_ids=False)
        if xmlsec_ok is False:
            errors.append("libxmlsec1 rejette la signature (désaccord entre vérificateurs).")
    trusted, revoked, chain_error = False, False, None
    if cert is not None and check_chain:
        trusted, revoked, chain_error = validate_certificate_chain(
            cert, check.certificates, trust_roots, crls=crls, allow_fetching=allow_fetching, moment=moment)
        if revoked:
            errors.append("Le certificat du signataire est révoqué.")
        elif not trusted:
            errors.append(f"Chaîne de certification non approuvée : {chain_error}")
    policy_id = props["policy_id"]
    policy_version = _POLICIES.get(policy_id or "")
    policy_hash_ok = None
    if policy_id == POLICY_OID and props["policy_hash"] is not None:
        policy_hash_ok = props["policy_hash"] == POLICY_HASH
        if not policy_hash_ok:
            errors.append("L'empreinte de la politique de signature Helios 1.7 est fausse.")
    return PesSignatureReport(
        signature_id=sig.get("Id"),
        scope=scope,
        location=location,
        signed_elements=signed,
        signer=certificate_display_name(cert) if cert is not None else None,
        signer_subject=cert.subject.rfc4514_string() if cert is not None else None,
        issuer=cert.issuer.rfc4514_string() if cert is not None else None,
        serial=str(cert.serial_number) if cert is not None else None,
        signing_time=props["signing_time"],
        claimed_roles=props["roles"],
        xades_version=props["version"],
        policy_id=policy_id,
        policy_version=policy_version,
        policy_hash_ok=policy_hash_ok,
        signature_algorithm=check.signature_algorithm,
        digests_ok=check.digests_ok,
        signature_value_ok=check.signature_value_ok,
        signing_certificate_ok=signing_cert_ok,
        xmlsec_ok=xmlsec_ok,
        chain_trusted=trusted,
        revoked=revoked,
        chain_error=chain_error,
        errors=errors,
    )


def integrity_errors(xml: bytes, *, huge_tree: bool = True) -> list[str]:
    """Why the signatures a PES carries are broken, whatever the trust store (empty: every signature intact).

    The deposit's check (spec §4.4 case 3, error 177): each ``ds:Signature`` must have every reference digest
    right, a SignatureValue made by the certificate in KeyInfo, its XAdES signed
    properties covered, a SigningCertificate designating that certificate, and cover the element holding it.
    Whether the certificate chains to a trusted CA is the verification step's business (the trust store of the
    parapheur need not hold every CA of the ordonnateurs), and so is libxmlsec1's second opinion (it doubles the
    cost; the verification step asks for it). A PES signed on some bordereaux only is not broken.
    """
    try:
        report = verify_pes(xml, (), huge_tree=huge_tree, check_chain=False, cross_check=False)
    except VerificationInputError as exc:
        return [str(exc)]
    return [f"{s.signature_id or s.location} : {e}" for s in report.signatures for e in s.errors]


def _xades_properties(sig: etree._Element) -> dict[str, Any]:
    out: dict[str, Any] = {"sp": None, "version": None, "signing_time": None, "roles": [], "policy_id": None,
                           "policy_hash": None, "cert_digest": None}
    for ns in XADES_NAMESPACES:
        qp = sig.find(f"{qn(DSIG, 'Object')}/{qn(ns, 'QualifyingProperties')}")
        if qp is None:
            continue
        out["version"] = _XADES_VERSIONS[ns]
        sp = qp.find(qn(ns, "SignedProperties"))
        out["sp"] = sp
        if sp is None:
            break
        ssp = sp.find(qn(ns, "SignedSignatureProperties"))
        if ssp is None:
            break
        out["signing_time"] = ssp.findtext(qn(ns, "SigningTime"))
        out["roles"] = [r.text or "" for r in ssp.iterfind(
            f"{qn(ns, 'SignerRole')}/{qn(ns, 'ClaimedRoles')}/{qn(ns, 'ClaimedRole')}")]
        spi = ssp.find(f"{qn(ns, 'SignaturePolicyIdentifier')}/{qn(ns, 'SignaturePolicyId')}")
        if spi is not None:
            ident = spi.findtext(f"{qn(ns, 'SigPolicyId')}/{qn(ns, 'Identifier')}")
            out["policy_id"] = ident.strip() if ident else None
            hv = spi.findtext(f"{qn(ns, 'SigPolicyHash')}/{qn(ns, 'DigestValue')}")
            out["policy_hash"] = "".join(hv.split()) if hv else None
        cd = ssp.find(f"{qn(ns, 'SigningCertificate')}/{qn(ns, 'Cert')}/{qn(ns, 'CertDigest')}")
        if cd is not None:
            dm = cd.find(qn(ns, "DigestMethod"))
            if dm is None:
                dm = cd.find(qn(DSIG, "DigestMethod"))
            dv = cd.findtext(qn(ns, "DigestValue")) or cd.findtext(qn(DSIG, "DigestValue")) or ""
            alg = DIGESTS.get(dm.get("Algorithm", "") if dm is not None else "")
            if alg:
                out["cert_digest"] = (alg, "".join(dv.split()))
        break
    return out


def _info_dematerialisee_warnings(root: etree._Element, report: PesVerificationReport) -> None:
    for domain_tag, header_tag in DOMAINS:
        for domain in root.findall(domain_tag):
            if domain.find("Bordereau") is None:
                continue
            info = domain.find(f"{header_tag}/InfoDematerialisee")
            value = (info.get("V") or "").strip() if info is not None else "absent"
            if report.signed and value not in ("1", "true"):
                report.warnings.append(f"{header_tag}/InfoDematerialisee vaut « {value} » alors que le flux est "
                                       "signé : Helios rejette ce flux.")
            if not report.signed and value in ("1", "true"):
                report.warnings.append(f"{header_tag}/InfoDematerialisee vaut 1 alors que le flux n'est pas "
                                       "signé : Helios rejette ce flux.")

