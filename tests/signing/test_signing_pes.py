"""PES: enveloped XAdES-EPES (global / per bordereau), checked by xmlsec1 AND signxml, XSD round trip,
verification of incoming signatures (XAdES 1.1.1 and 1.2.2, policies 1.7 and legacy 1.4/sha1)."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from parafe.signing.errors import (
    PesAlreadySignedError,
    PesInfoDematerialiseeError,
    PesStructureError,
    XmlSigningError,
)
from parafe.signing.keys import ServerSigner
from parafe.signing.pes import sign_pes
from parafe.signing.verify import verify_pes

from .conftest import (
    PES_SAMPLES,
    Pki,
    make_pes,
    signxml_verify_each,
    xmlsec1_verify_signatures,
)

DS = "{http://www.w3.org/2000/09/xmldsig#}"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True)
UNSIGNED_SAMPLES = sorted(p.name for p in PES_SAMPLES.glob("*.xml")
                          if p.name.startswith(("valid_unsigned", "valid_PES_PJ", "invalid_BlocPiece")))


def signature_ids(xml: bytes) -> list[str]:
    return [s.get("Id") for s in etree.fromstring(xml, PARSER).iter(f"{DS}Signature")]


def assert_independent_validators(tmp_path: Path, signed: bytes, pki: Pki, *, per_bordereau: bool) -> None:
    path = tmp_path / "signed.xml"
    path.write_bytes(signed)
    ids = signature_ids(signed)
    assert ids
    element = "Bordereau" if per_bordereau else "PES_Aller"
    for ok, out in xmlsec1_verify_signatures(path, ids, element, trusted=pki.ca_pem):
        assert ok, out
    for ok, out in signxml_verify_each(signed, pki.ca_pem):
        assert ok, out


@pytest.mark.parametrize("sample", UNSIGNED_SAMPLES)
@pytest.mark.parametrize("per_bordereau", [False, True])
def test_round_trip_on_every_sample(
    tmp_path: Path, pki: Pki, signer: ServerSigner, pes_schema: etree.XMLSchema, sample: str, per_bordereau: bool,
) -> None:
    data = (PES_SAMPLES / sample).read_bytes()
    doc = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
    has_bordereau = doc.find(".//Bordereau") is not None
    if per_bordereau and not has_bordereau:
        with pytest.raises(PesStructureError):
            sign_pes(data, signer, per_bordereau=True)
        return
    signed = sign_pes(data, signer, per_bordereau=per_bordereau, city="Foix", postal_code="09000")
    out = etree.fromstring(signed, PARSER)
    valid_before = pes_schema.validate(doc)
    assert pes_schema.validate(out) == valid_before, pes_schema.error_log
    if sample.startswith("valid"):
        assert valid_before
    assert_independent_validators(tmp_path, signed, pki, per_bordereau=per_bordereau)
    report = verify_pes(signed, [pki.ca_pem])
    assert report.valid, report.to_text()
    assert report.mode == ("per_bordereau" if per_bordereau else "global")
    assert signed.startswith(b"<?xml version='1.0' encoding='ISO-8859-1'?>")
    if per_bordereau:
        assert len(report.signatures) == len(report.bordereaux)
        assert not report.unsigned_bordereaux
    else:
        assert len(report.signatures) == 1
        assert report.signatures[0].signed_elements[0].element == "PES_Aller"
    for sig in report.signatures:
        assert sig.xades_version == "1.1.1"
        assert sig.policy_version == "1.7"
        assert sig.policy_hash_ok
        assert sig.claimed_roles == ["Ordonnateur"]
        assert sig.signer == "Jean Dupont"
        assert sig.xmlsec_ok
        assert sig.signing_certificate_ok


def test_signature_shape_follows_d12(pki: Pki, signer: ServerSigner) -> None:
    signed = sign_pes(make_pes(2), signer, per_bordereau=True, role="Maire", city="Foix", postal_code="09000")
    root = etree.fromstring(signed, PARSER)
    xad = "{http://uri.etsi.org/01903/v1.1.1#}"
    for bordereau in root.iter("Bordereau"):
        sig = bordereau[-1]
        assert sig.tag == f"{DS}Signature", "the signature is the last child of its bordereau"
        si = sig.find(f"{DS}SignedInfo")
        assert si.find(f"{DS}CanonicalizationMethod").get("Algorithm") == "http://www.w3.org/2001/10/xml-exc-c14n#"
        assert si.find(f"{DS}SignatureMethod").get("Algorithm").endswith("rsa-sha256")
        data_ref, props_ref = si.findall(f"{DS}Reference")
        assert data_ref.get("URI") == "#" + bordereau.get("Id")
        assert [t.get("Algorithm") for t in data_ref.iter(f"{DS}Transform")] == [
            "http://www.w3.org/2000/09/xmldsig#enveloped-signature", "http://www.w3.org/2001/10/xml-exc-c14n#"]
        assert props_ref.get("Type") == "http://uri.etsi.org/01903/v1.1.1#SignedProperties"
        ssp = sig.find(f".//{xad}SignedSignatureProperties")
        assert [etree.QName(c).localname for c in ssp] == [
            "SigningTime", "SigningCertificate", "SignaturePolicyIdentifier", "SignatureProductionPlace",
            "SignerRole"]
        assert ssp.findtext(f".//{xad}Identifier") == "urn:oid:1.2.250.1.131.1.5.18.21.1.7"
        assert ssp.findtext(f".//{xad}SigPolicyHash/{xad}DigestValue") == "roF9+cfRHNPtVJolhdqfIqGMVuUXX8aR4rpiquf0u5E="
        assert ssp.findtext(f".//{xad}ClaimedRole") == "Maire"
        assert ssp.findtext(f".//{xad}City") == "Foix"
        assert ssp.findtext(f".//{xad}PostalCode") == "09000"
        assert ssp.findtext(f"{xad}SigningTime").endswith("Z")
        cert_der = pki.signer.cert.public_bytes(serialization.Encoding.DER)
        assert ssp.findtext(f".//{xad}CertDigest/{xad}DigestValue") == base64.b64encode(
            hashlib.sha256(cert_der).digest()).decode()


def test_missing_ids_are_added_and_unique(
    tmp_path: Path, pki: Pki, signer: ServerSigner, pes_schema: etree.XMLSchema,
) -> None:
    data = make_pes(4, ids=None)
    for per_bordereau in (True, False):
        signed = sign_pes(data, signer, per_bordereau=per_bordereau)
        root = etree.fromstring(signed, PARSER)
        ids = [el.get("Id") for el in root.iter() if isinstance(el.tag, str) and el.get("Id")]
        assert len(ids) == len(set(ids))
        if per_bordereau:
            assert all(b.get("Id") for b in root.iter("Bordereau"))
        else:
            assert root.get("Id")
        assert pes_schema.validate(root), pes_schema.error_log
        assert_independent_validators(tmp_path, signed, pki, per_bordereau=per_bordereau)


@pytest.mark.parametrize("per_bordereau", [True, False])
def test_edited_amount_in_signed_bordereau_fails_every_verifier(
    tmp_path: Path, pki: Pki, signer: ServerSigner, per_bordereau: bool
) -> None:
    signed = sign_pes(make_pes(3), signer, per_bordereau=per_bordereau)
    target = b'<MtHT V="101.50"/>'
    assert signed.count(target) == 3
    pos = signed.index(target, signed.index(b'Id="BORD2"'))  # a piece of the second bordereau
    tampered = signed[:pos] + b'<MtHT V="901.50"/>' + signed[pos + len(target):]
    path = tmp_path / "tampered.xml"
    path.write_bytes(tampered)
    ids = signature_ids(tampered)
    element = "Bordereau" if per_bordereau else "PES_Aller"
    xmlsec = xmlsec1_verify_signatures(path, ids, element, trusted=pki.ca_pem)
    sx = signxml_verify_each(tampered, pki.ca_pem)
    report = verify_pes(tampered, [pki.ca_pem])
    assert not report.valid
    if per_bordereau:
        # only the second bordereau's signature breaks
        assert [ok for ok, _ in xmlsec] == [True, False, True]
        assert [ok for ok, _ in sx] == [True, False, True]
        assert [s.ok for s in report.signatures] == [True, False, True]
        bad = report.signatures[1]
        assert bad.signed_elements[0].id == "BORD2"
        assert not bad.signed_elements[0].digest_ok
        assert bad.signed_elements[1].digest_ok  # the signed properties are intact
    else:
        assert not xmlsec[0][0]
        assert not sx[0][0]
        assert not report.signatures[0].digests_ok


def test_duplicate_id_wrapping_is_rejected(pki: Pki, signer: ServerSigner) -> None:
    signed = sign_pes(make_pes(2), signer, per_bordereau=True)
    root = etree.fromstring(signed, PARSER)
    # Signature-wrapping attempt: change bordereau 1 but keep an untouched copy carrying the same Id.
    b1 = next(root.iter("Bordereau"))
    import copy

    decoy = copy.deepcopy(b1)
    b1.find(".//MtHT").set("V", "999999.99")
    root.find("PES_DepenseAller").append(decoy)
    report = verify_pes(etree.tostring(root), [pki.ca_pem])
    assert not report.valid
    assert any("plusieurs fois" in (e.error or "") for s in report.signatures for e in s.signed_elements)


def test_already_signed_pes_is_refused(signer: ServerSigner) -> None:
    with pytest.raises(PesAlreadySignedError):
        sign_pes((PES_SAMPLES / "signed_per_bordereau_xades122_sha256.xml").read_bytes(), signer, per_bordereau=True)
    once = sign_pes(make_pes(1), signer, per_bordereau=True)
    with pytest.raises(PesAlreadySignedError):
        sign_pes(once, signer, per_bordereau=False)


@pytest.mark.parametrize("name", ["acquit_ok.xml", "pes_retour_depense.xml"])
def test_not_a_pes_aller(signer: ServerSigner, name: str) -> None:
    with pytest.raises(PesStructureError):
        sign_pes((PES_SAMPLES / name).read_bytes(), signer, per_bordereau=False)


def test_untrusted_xml_constructs_are_refused(signer: ServerSigner) -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
            b'<n:PES_Aller xmlns:n="http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/aller">&a;</n:PES_Aller>')
    with pytest.raises(XmlSigningError):
        sign_pes(bomb, signer, per_bordereau=False)


def test_info_dematerialisee_rule(signer: ServerSigner, pki: Pki) -> None:
    def value(xml: bytes) -> str | None:
        el = etree.fromstring(xml, PARSER).find(".//EnTeteDepense/InfoDematerialisee")
        return None if el is None else el.get("V")

    assert value(sign_pes(make_pes(1, info="0"), signer, per_bordereau=True)) == "1"
    assert value(sign_pes(make_pes(1, info=None), signer, per_bordereau=False)) == "1"  # inserted after IdVer
    assert value(sign_pes(make_pes(1, info="0"), signer, per_bordereau=True, info_dematerialisee="keep")) == "0"
    with pytest.raises(PesInfoDematerialiseeError):
        sign_pes(make_pes(1, info="0"), signer, per_bordereau=True, info_dematerialisee="check")
    assert value(sign_pes(make_pes(1, info="1"), signer, per_bordereau=True, info_dematerialisee="check")) == "1"
    kept = sign_pes(make_pes(1, info="0"), signer, per_bordereau=True, info_dematerialisee="keep")
    report = verify_pes(kept, [pki.ca_pem])
    assert report.valid
    assert any("InfoDematerialisee" in w for w in report.warnings)
    unsigned = verify_pes(make_pes(1, info="1"), [pki.ca_pem])
    assert not unsigned.valid
    assert not unsigned.signed
    assert unsigned.warnings


def test_signed_sample_xades122_verifies(pki: Pki) -> None:
    data = (PES_SAMPLES / "signed_per_bordereau_xades122_sha256.xml").read_bytes()
    report = verify_pes(data, [pki.ca_pem])
    assert report.mode == "per_bordereau"
    assert len(report.signatures) == 1
    sig = report.signatures[0]
    assert sig.xades_version == "1.2.2"
    assert sig.policy_version == "1.7"
    assert sig.policy_hash_ok
    assert sig.digests_ok
    assert sig.signature_value_ok
    assert sig.signing_certificate_ok
    assert sig.xmlsec_ok
    assert [e.element for e in sig.signed_elements] == ["Bordereau", "SignedProperties"]
    assert sig.signer == "Hameury_Lukas"
    assert sig.claimed_roles == ["Administrateur"]
    assert not sig.chain_trusted
    assert not report.valid  # its CA is not in our trust store
    # Trusting its certificate (at its signing time: it expired in 2018) makes it fully valid.
    from datetime import datetime

    cert_b64 = etree.fromstring(data, PARSER).findtext(f".//{DS}X509Certificate")
    anchor = base64.b64decode("".join(cert_b64.split()))
    trusted = verify_pes(data, [anchor], moment=datetime.fromisoformat("2018-07-04T15:19:45+00:00"))
    assert trusted.valid, trusted.to_text()
    assert any("InfoDematerialisee" in w for w in trusted.warnings)  # V="0" in a signed flow


LEGACY_TEMPLATE = """<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="{sid}"><ds:SignedInfo>
<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
<ds:SignatureMethod Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1"/>
<ds:Reference URI="#{target}"><ds:Transforms>
<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>
<ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/><ds:DigestValue/></ds:Reference>
<ds:Reference Type="http://uri.etsi.org/01903/v1.1.1#SignedProperties" URI="#{sid}_SP"><ds:Transforms>
<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>
<ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/><ds:DigestValue/></ds:Reference>
</ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate>
</ds:X509Data></ds:KeyInfo><ds:Object><xad:QualifyingProperties xmlns:xad="http://uri.etsi.org/01903/v1.1.1#"
Target="#{sid}"><xad:SignedProperties Id="{sid}_SP"><xad:SignedSignatureProperties>
<xad:SigningTime>2012-03-01T10:00:00Z</xad:SigningTime><xad:SigningCertificate><xad:Cert><xad:CertDigest>
<xad:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/><xad:DigestValue>{cert_sha1}</xad:DigestValue>
</xad:CertDigest><xad:IssuerSerial><ds:X509IssuerName>{issuer}</ds:X509IssuerName>
<ds:X509SerialNumber>{serial}</ds:X509SerialNumber></xad:IssuerSerial></xad:Cert></xad:SigningCertificate>
<xad:SignaturePolicyIdentifier><xad:SignaturePolicyId><xad:SigPolicyId>
<xad:Identifier>urn:oid:1.2.250.1.131.1.5.18.21.1.4</xad:Identifier></xad:SigPolicyId><xad:SigPolicyHash>
<xad:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/><xad:DigestValue>G7pCaaGVvyrwaJeKUsHtuDdhJJE=</xad:DigestValue>
</xad:SigPolicyHash></xad:SignaturePolicyId></xad:SignaturePolicyIdentifier><xad:SignerRole><xad:ClaimedRoles>
<xad:ClaimedRole>Maire</xad:ClaimedRole></xad:ClaimedRoles></xad:SignerRole></xad:SignedSignatureProperties>
</xad:SignedProperties></xad:QualifyingProperties></ds:Object></ds:Signature>"""


def legacy_signed(tmp_path: Path, pki: Pki, per_bordereau: bool) -> bytes:
    """A legacy (policy 1.4, rsa-sha1/sha1) signed PES produced by the xmlsec1 CLI from a template.

    The template's SigPolicyHash is an arbitrary value: the verifier reports the 1.4 policy without checking its
    hash (only the 1.7 hash is known and checked).
    """
    cert_der = pki.signer.cert.public_bytes(serialization.Encoding.DER)
    fields = {"cert": base64.b64encode(cert_der).decode(), "issuer": pki.signer.cert.issuer.rfc4514_string(),
              "serial": pki.signer.cert.serial_number,
              "cert_sha1": base64.b64encode(hashlib.sha1(cert_der).digest()).decode()}
    root = etree.fromstring(make_pes(2, info="1"), PARSER)
    targets = list(root.iter("Bordereau")) if per_bordereau else [root]
    sids = []
    for t in targets:
        sid = f"{t.get('Id')}_LEGACY"
        t.append(etree.fromstring(LEGACY_TEMPLATE.format(sid=sid, target=t.get("Id"), **fields)))
        sids.append(sid)
    path = tmp_path / "legacy.xml"
    path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="ISO-8859-1"))
    for sid in sids:
        subprocess.run(["xmlsec1", "--sign", "--privkey-pem", f"{pki.signer.key_pem},{pki.signer.cert_pem}",
                        "--id-attr:Id", "Bordereau" if per_bordereau else "PES_Aller",
                        "--id-attr:Id", "http://www.w3.org/2000/09/xmldsig#:Signature", "--node-id", sid,
                        "--output", str(path), str(path)], check=True, capture_output=True, timeout=60)
    return path.read_bytes()


@pytest.mark.parametrize("per_bordereau", [True, False])
def test_legacy_policy_14_sha1_verifies(tmp_path: Path, pki: Pki, per_bordereau: bool) -> None:
    data = legacy_signed(tmp_path, pki, per_bordereau)
    report = verify_pes(data, [pki.ca_pem])
    assert report.valid, report.to_text()
    assert report.mode == ("per_bordereau" if per_bordereau else "global")
    for sig in report.signatures:
        assert sig.policy_version == "1.4"
        assert sig.xades_version == "1.1.1"
        assert sig.signature_algorithm == "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
        assert sig.signing_certificate_ok
        assert sig.claimed_roles == ["Maire"]
    tampered = data.replace(b'<MtHT V="102.50"/>', b'<MtHT V="102.51"/>', 1)
    assert not verify_pes(tampered, [pki.ca_pem]).valid


def test_untrusted_and_revoked_signers(tmp_path: Path, pki: Pki, signer: ServerSigner) -> None:
    from parafe.signing.keys import load_signer

    from .conftest import P12_PASSWORD

    signed = sign_pes(make_pes(1), signer, per_bordereau=False)
    other = verify_pes(signed, [pki.other_ca.cert_pem])
    assert not other.valid
    assert other.signatures[0].digests_ok
    assert not other.signatures[0].chain_trusted
    revoked = load_signer(pki.revoked.p12, P12_PASSWORD)
    signed = sign_pes(make_pes(1), revoked, per_bordereau=True)
    report = verify_pes(signed, [pki.ca_pem], crls=[pki.crl_pem])
    assert not report.valid
    assert report.signatures[0].revoked
    d = report.to_dict()
    assert d["valid"] is False
    assert d["signatures"][0]["revoked"] is True


@pytest.mark.parametrize("encoding", ["ISO-8859-1", "UTF-8", "UTF-16"])
def test_spliced_signature_values_equal_the_tree_serialisation(signer: ServerSigner, encoding: str) -> None:
    # finish_pes splices the values into the serialised bytes (issue 17); the result is the same as setting them
    # as the SignatureValue texts, in an ASCII-compatible encoding or not (UTF-16: set in the tree)
    from datetime import UTC, datetime

    from parafe.signing.pes import PreparedPes, finish_pes, prepare_pes
    from parafe.signing.xmldsig import b64_lines

    text = make_pes(3).decode("iso-8859-1").replace('encoding="ISO-8859-1"', f'encoding="{encoding}"', 1)
    data = text.encode("utf-16" if encoding == "UTF-16" else encoding)
    when = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)

    def prepared() -> PreparedPes:
        return prepare_pes(data, signer.certificate, signer.chain, per_bordereau=True, signing_time=when)

    reference = prepared()
    values = [signer.sign_raw(d, "sha256") for d in reference.to_sign]
    for el, value in zip(reference._value_elements, values, strict=True):
        el.text = b64_lines(value)
    assert finish_pes(prepared(), values) == reference.serialize()
