"""XML-DSig core shared by the PES (enveloped XAdES-EPES) and office (detached XAdES) signatures.

Building: :func:`new_signature` lays out ``ds:Signature`` (SignedInfo with references, empty SignatureValue,
KeyInfo with the certificate chain, an ``ds:Object`` for the XAdES properties); digests and the canonical
SignedInfo are computed with lxml's (libxml2) canonicalisation; the RSA signature comes from a
:class:`~parafe.signing.keys.ServerSigner` or from a remote signer, so tokens and remote signing need no
special case.

Verifying: :func:`check_signature` resolves each Reference itself (Id attributes must be unique, which defeats
signature-wrapping by duplicate Ids), applies the supported transforms (enveloped-signature, inclusive and
exclusive C14N 1.0/1.1 with or without comments), compares every digest, then checks SignatureValue against the
certificate in KeyInfo. It returns per-reference results (which element is signed, whether its digest holds).
:func:`xmlsec_cross_check` asks libxmlsec1 (python-xmlsec) for a second, independent opinion.

Untrusted XML is parsed by :func:`safe_parser` (no entities, no network, no huge trees by default).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from parafe.signing.errors import XmlSigningError
from parafe.signing.keys import verify_raw

DSIG = "http://www.w3.org/2000/09/xmldsig#"
XADES111 = "http://uri.etsi.org/01903/v1.1.1#"
XADES122 = "http://uri.etsi.org/01903/v1.2.2#"
XADES132 = "http://uri.etsi.org/01903/v1.3.2#"
XADES141 = "http://uri.etsi.org/01903/v1.4.1#"
XADES_NAMESPACES = (XADES111, XADES122, XADES132)

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_COMMENTS = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
C14N10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N10_COMMENTS = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"
C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
C14N11_COMMENTS = "http://www.w3.org/2006/12/xml-c14n11#WithComments"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"

DIGESTS = {SHA1: "sha1", SHA256: "sha256", SHA384: "sha384", SHA512: "sha512"}
DIGEST_URIS = {v: k for k, v in DIGESTS.items()}
SIGNATURE_METHODS = {RSA_SHA1: "sha1", RSA_SHA256: "sha256", RSA_SHA384: "sha384", RSA_SHA512: "sha512"}
# uri -> (exclusive, with_comments, c14n 1.1)
C14N_METHODS: dict[str, tuple[bool, bool, bool]] = {
    EXC_C14N: (True, False, False),
    EXC_C14N_COMMENTS: (True, True, False),
    C14N10: (False, False, False),
    C14N10_COMMENTS: (False, True, False),
    C14N11: (False, False, True),
    C14N11_COMMENTS: (False, True, True),
}


def qn(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


def safe_parser(*, huge_tree: bool = False) -> etree.XMLParser:
    """The house parser for untrusted XML: no entity expansion, no network, no huge trees."""
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=huge_tree, load_dtd=False,
                           remove_blank_text=False, remove_comments=False, remove_pis=False)


def parse_untrusted(data: bytes, *, huge_tree: bool = False) -> etree._ElementTree:
    """Parse ``data`` with :func:`safe_parser`; a DOCTYPE is refused (entities would change what is signed)."""
    try:
        tree = etree.ElementTree(etree.fromstring(data, safe_parser(huge_tree=huge_tree)))
    except etree.XMLSyntaxError as exc:
        raise XmlSigningError(f"XML mal formé : {exc}") from exc
    if tree.docinfo.doctype:
        raise XmlSigningError("Les documents XML avec DOCTYPE ne sont pas acceptés.")
    return tree


def c14n(el: etree._Element, method: str = EXC_C14N, inclusive_prefixes: Sequence[str] | None = None) -> bytes:
    """Canonical form of the subtree ``el`` with the C14N algorithm ``method``."""
    try:
        exclusive, comments, v11 = C14N_METHODS[method]
    except KeyError:
        raise XmlSigningError(f"Canonicalisation non prise en charge : {method}") from None
    if v11:
        # C14N 1.1 differs from 1.0 only for xml:id/xml:base inheritance on document subsets.
        return etree.tostring(el, method="c14n", exclusive=False, with_comments=comments)
    return etree.tostring(el, method="c14n", exclusive=exclusive, with_comments=comments,
                          inclusive_ns_prefixes=list(inclusive_prefixes) if inclusive_prefixes else None)


def digest_b64(data: bytes, algorithm: str = "sha256") -> str:
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode("ascii")


def b64_lines(data: bytes) -> str:
    """Base64 in 76-character lines (the layout xmlsec and most signers produce)."""
    text = base64.b64encode(data).decode("ascii")
    return "\n".join(text[i:i + 76] for i in range(0, len(text), 76))


# --- building -----------------------------------------------------------------------------------------------
@dataclass
class ReferenceSpec:
    """One ``ds:Reference`` to lay out; ``digest`` may be filled later."""

    uri: str
    transforms: tuple[str, ...] = ()
    type: str | None = None
    id: str | None = None
    digest_algorithm: str = "sha256"
    digest: str | None = None


@dataclass
class SignatureParts:
    """Handles on the pieces of a freshly built ``ds:Signature``."""

    signature: etree._Element
    signed_info: etree._Element
    digest_values: list[etree._Element]
    signature_value: etree._Element
    object: etree._Element


def new_signature(
    sig_id: str,
    references: Sequence[ReferenceSpec],
    certificates: Sequence[x509.Certificate],
    *,
    signature_method: str = RSA_SHA256,
    c14n_method: str = EXC_C14N,
    sv_id: str | None = None,
) -> SignatureParts:
    """A detached ``ds:Signature`` element (not yet in a document) with empty digests and value."""
    nsmap = {"ds": DSIG}
    sig = etree.Element(qn(DSIG, "Signature"), nsmap=nsmap)
    sig.set("Id", sig_id)
    si = etree.SubElement(sig, qn(DSIG, "SignedInfo"))
    etree.SubElement(si, qn(DSIG, "CanonicalizationMethod")).set("Algorithm", c14n_method)
    etree.SubElement(si, qn(DSIG, "SignatureMethod")).set("Algorithm", signature_method)
    digest_values = []
    for ref in references:
        r = etree.SubElement(si, qn(DSIG, "Reference"))
        if ref.id:
            r.set("Id", ref.id)
        if ref.type:
            r.set("Type", ref.type)
        r.set("URI", ref.uri)
        if ref.transforms:
            tr = etree.SubElement(r, qn(DSIG, "Transforms"))
            for t in ref.transforms:
                etree.SubElement(tr, qn(DSIG, "Transform")).set("Algorithm", t)
        etree.SubElement(r, qn(DSIG, "DigestMethod")).set("Algorithm", DIGEST_URIS[ref.digest_algorithm])
        dv = etree.SubElement(r, qn(DSIG, "DigestValue"))
        dv.text = ref.digest or ""
        digest_values.append(dv)
    sv = etree.SubElement(sig, qn(DSIG, "SignatureValue"))
    if sv_id:
        sv.set("Id", sv_id)
    ki = etree.SubElement(sig, qn(DSIG, "KeyInfo"))
    xd = etree.SubElement(ki, qn(DSIG, "X509Data"))
    for cert in certificates:
        etree.SubElement(xd, qn(DSIG, "X509Certificate")).text = b64_lines(
            cert.public_bytes(serialization.Encoding.DER))
    obj = etree.SubElement(sig, qn(DSIG, "Object"))
    return SignatureParts(sig, si, digest_values, sv, obj)


def chain_for_keyinfo(cert: x509.Certificate, chain: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    """Signer first, then the intermediates (self-signed roots are left to the verifier's trust store)."""
    return [cert, *[c for c in chain if c.subject != c.issuer]]


# --- verifying -----------------------------------------------------------------------------------------------
def build_id_index(root: etree._Element) -> tuple[dict[str, etree._Element], set[str]]:
    """Elements by ``Id`` attribute (the XML-DSig/XAdES identifier), and the Id values found more than once."""
    index: dict[str, etree._Element] = {}
    dups: set[str] = set()
    # An attribute-axis XPath runs in libxml2: far faster than iterating elements in Python on large documents.
    for attr in root.xpath("descendant-or-self::*/@Id"):
        value = str(attr)
        el = attr.getparent()
        if value in index and index[value] is not el:
            dups.add(value)
        index[value] = el
    return index, dups


@dataclass
class ReferenceCheck:
    """One ``ds:Reference`` of a signature, resolved and recomputed."""

    uri: str
    type: str | None
    target: str | None  # local name of the referenced element ("Bordereau", "PES_Aller", "SignedProperties")
    target_id: str | None
    digest_algorithm: str | None
    digest_ok: bool
    error: str | None = None


@dataclass
class SignatureCheck:
    """Result of :func:`check_signature` for one ``ds:Signature``."""

    signature_id: str | None
    signature_algorithm: str | None
    references: list[ReferenceCheck] = field(default_factory=list)
    signature_value_ok: bool = False
    signer_certificate: x509.Certificate | None = None
    certificates: list[x509.Certificate] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def digests_ok(self) -> bool:
        return bool(self.references) and all(r.digest_ok for r in self.references)

    @property
    def ok(self) -> bool:
        return self.digests_ok and self.signature_value_ok and not self.errors


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def _apply_reference(
    ref: etree._Element, sig: etree._Element, index: dict[str, etree._Element], dups: set[str],
    resolver: Any = None,
) -> tuple[bytes | None, etree._Element | None, str | None]:
    """Octets to digest for ``ref``, the referenced element, or an error message."""
    uri = ref.get("URI")
    transforms = [t.get("Algorithm", "") for t in ref.findall(f"{qn(DSIG, 'Transforms')}/{qn(DSIG, 'Transform')}")]
    if uri is None:
        return None, None, "Référence sans URI"
    target: etree._Element | None
    if uri == "" or uri == "#xpointer(/)":
        target = sig.getroottree().getroot()
        with_comments_default = uri != ""
    elif uri.startswith("#"):
        frag = uri[1:]
        if frag.startswith("xpointer(id(") and frag.endswith("))"):
            frag = frag[len("xpointer(id("):-2].strip("'\"")
        if frag in dups:
            return None, None, f"Identifiant « {frag} » présent plusieurs fois"
        target = index.get(frag)
        if target is None:
            return None, None, f"Élément « {frag} » introuvable"
        with_comments_default = False
    else:
        if resolver is None:
            return None, None, f"Référence externe « {uri} » non résolue"
        data = resolver(uri)
        if data is None:
            return None, None, f"Référence externe « {uri} » introuvable"
        if transforms:
            return None, None, "Transformations sur une référence externe non prises en charge"
        return bytes(data), None, None
    enveloped = ENVELOPED in transforms
    others = [t for t in transforms if t != ENVELOPED]
    if len(others) > 1 or any(t not in C14N_METHODS for t in others):
        return None, target, f"Transformations non prises en charge : {', '.join(others)}"
    method = others[0] if others else (C14N10_COMMENTS if with_comments_default else C14N10)
    prefixes = None
    for t in ref.findall(f"{qn(DSIG, 'Transforms')}/{qn(DSIG, 'Transform')}"):
        inc = t.find(qn(EXC_C14N, "InclusiveNamespaces"))
        if inc is not None:
            prefixes = (inc.get("PrefixList") or "").split()
    if enveloped and _is_ancestor(target, sig):
        data = _c14n_without(target, sig, method, prefixes)
    else:
        data = c14n(target, method, prefixes)
    return data, target, None


def _is_ancestor(ancestor: etree._Element, el: etree._Element) -> bool:
    node = el.getparent()
    while node is not None:
        if node is ancestor:
            return True
        node = node.getparent()
    return False


def _c14n_without(target: etree._Element, sig: etree._Element, method: str, prefixes: Sequence[str] | None) -> bytes:
    """C14N of ``target`` with ``sig`` removed (enveloped-signature transform); the tree is restored after."""
    parent = sig.getparent()
    assert parent is not None
    idx = parent.index(sig)
    tail = sig.tail
    prev = sig.getprevious()
    saved_prev_tail = prev.tail if prev is not None else None
    saved_parent_text = parent.text
    parent.remove(sig)
    if tail:
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    try:
        return c14n(target, method, prefixes)
    finally:
        if prev is not None:
            prev.tail = saved_prev_tail
        else:
            parent.text = saved_parent_text
        parent.insert(idx, sig)
        sig.tail = tail


def keyinfo_certificates(sig: etree._Element) -> list[x509.Certificate]:
    certs = []
    for el in sig.iterfind(f"{qn(DSIG, 'KeyInfo')}/{qn(DSIG, 'X509Data')}/{qn(DSIG, 'X509Certificate')}"):
        try:
            certs.append(x509.load_der_x509_certificate(base64.b64decode("".join((el.text or "").split()))))
        except ValueError:
            continue
    return certs


def check_signature(
    sig: etree._Element,
    index: dict[str, etree._Element] | None = None,
    dups: set[str] | None = None,
    *,
    resolver: Any = None,
) -> SignatureCheck:
    """Verify one ``ds:Signature``: every reference digest, then the SignatureValue (see module docstring)."""
    if index is None or dups is None:
        index, dups = build_id_index(sig.getroottree().getroot())
    si = sig.find(qn(DSIG, "SignedInfo"))
    result = SignatureCheck(signature_id=sig.get("Id"), signature_algorithm=None)
    if si is None:
        result.errors.append("SignedInfo absent")
        return result
    sm = si.find(qn(DSIG, "SignatureMethod"))
    cm = si.find(qn(DSIG, "CanonicalizationMethod"))
    sig_alg = sm.get("Algorithm") if sm is not None else None
    result.signature_algorithm = sig_alg
    for ref in si.iterfind(qn(DSIG, "Reference")):
        dm = ref.find(qn(DSIG, "DigestMethod"))
        dv = ref.find(qn(DSIG, "DigestValue"))
        alg_uri = dm.get("Algorithm") if dm is not None else None
        alg = DIGESTS.get(alg_uri or "")
        data, target, error = _apply_reference(ref, sig, index, dups, resolver)
        ok = False
        if error is None and alg is None:
            error = f"Algorithme d'empreinte non pris en charge : {alg_uri}"
        if error is None and data is not None and alg is not None and dv is not None:
            expected = "".join((dv.text or "").split())
            ok = digest_b64(data, alg) == expected
        target_id = None
        if target is not None:
            target_id = target.get("Id")
        result.references.append(ReferenceCheck(
            uri=ref.get("URI", ""), type=ref.get("Type"), target=_local(target) if target is not None else None,
            target_id=target_id, digest_algorithm=alg, digest_ok=ok, error=error))
    certs = keyinfo_certificates(sig)
    result.certificates = certs
    digest_name = SIGNATURE_METHODS.get(sig_alg or "")
    if digest_name is None:
        result.errors.append(f"Algorithme de signature non pris en charge : {sig_alg}")
        return result
    sv = sig.find(qn(DSIG, "SignatureValue"))
    if sv is None or not certs:
        result.errors.append("Valeur de signature ou certificat absent")
        return result
    try:
        value = base64.b64decode("".join((sv.text or "").split()))
    except ValueError:
        result.errors.append("Valeur de signature illisible")
        return result
    try:
        signed = c14n(si, cm.get("Algorithm", "") if cm is not None else "")
    except XmlSigningError as exc:
        result.errors.append(str(exc))
        return result
    for cert in certs:
        if verify_raw(cert, value, signed, digest_name):
            result.signature_value_ok = True
            result.signer_certificate = cert
            break
    return result


def xmlsec_cross_check(sig: etree._Element, cert: x509.Certificate, *, register_ids: bool = True) -> bool | None:
    """Ask libxmlsec1 (python-xmlsec) to verify ``sig`` with ``cert``'s key; None if xmlsec is unavailable.

    Id attributes are registered first (what ``xmlsec1 --id-attr`` does); pass ``register_ids=False`` when
    :func:`register_xmlsec_ids` already ran on this document. libxmlsec1 evaluates the enveloped-signature
    transform over the whole document (about 0.5 s per signature on a 5 MB PES), so an enveloped signature of a
    sub-element using only exclusive canonicalisation is checked on a copy of that element alone: exclusive
    C14N of an element does not depend on its ancestors, so the signed octets are the same.
    """
    try:
        import xmlsec
    except ImportError:  # pragma: no cover - pinned dependency
        return None
    parent = sig.getparent()
    methods = {t.get("Algorithm") for t in sig.iter(qn(DSIG, "Transform"), qn(DSIG, "CanonicalizationMethod"))}
    refs = {r.get("URI") for r in sig.iterfind(f"{qn(DSIG, 'SignedInfo')}/{qn(DSIG, 'Reference')}")}
    target = sig
    if (parent is not None and parent.getparent() is not None and f"#{parent.get('Id')}" in refs
            and methods <= {ENVELOPED, EXC_C14N, EXC_C14N_COMMENTS}):
        copy = etree.fromstring(etree.tostring(parent), safe_parser(huge_tree=True))
        found = copy.find(f"{qn(DSIG, 'Signature')}[@Id='{sig.get('Id')}']") if sig.get("Id") else None
        if found is not None:
            target, register_ids = found, True
    try:
        if register_ids:
            register_xmlsec_ids(target.getroottree().getroot())
        ctx = xmlsec.SignatureContext()
        der = cert.public_bytes(serialization.Encoding.DER)
        ctx.key = xmlsec.Key.from_memory(der, xmlsec.constants.KeyDataFormatCertDer, None)
        ctx.verify(target)
    except xmlsec.Error:
        return False
    return True


def register_xmlsec_ids(root: etree._Element) -> None:
    """Declare every ``Id`` attribute of the document as an XML ID for libxmlsec1 (once per document)."""
    import xmlsec

    xmlsec.tree.add_ids(root, ["Id"])
