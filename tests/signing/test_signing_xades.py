"""Detached XAdES for office documents: signature file + ZIP, checked by xmlsec1 AND signxml."""

from __future__ import annotations

import io
import os
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from parafe.signing.errors import XmlSigningError
from parafe.signing.keys import ServerSigner
from parafe.signing.xades import sign_xades_detached, signature_filename, verify_xades_detached

from .conftest import Pki

FILENAME = "Délibération n°12 (conseil).odt"


def office_document() -> bytes:
    """A small ODF-like ZIP: binary content, as office files are."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        zf.writestr("content.xml", "<office:document-content>Vu le code général</office:document-content>")
        zf.writestr("Pictures/x.bin", os.urandom(2048))
    return buf.getvalue()


def xmlsec1_detached(directory: Path, sig_name: str, pki: Pki) -> tuple[bool, str]:
    proc = subprocess.run(["xmlsec1", "--verify", "--trusted-pem", str(pki.ca_pem), sig_name],
                          cwd=directory, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    return proc.returncode == 0 and "SignedInfo References (ok/all): 2/2" in out, out


def signxml_detached(sig_xml: bytes, document: bytes, pki: Pki) -> tuple[bool, str]:
    from signxml.xades import XAdESVerifier

    try:
        XAdESVerifier().verify(sig_xml, ca_pem_file=str(pki.ca_pem), expect_references=2,
                               uri_resolver=lambda uri: document)
    except Exception as exc:  # signxml raises several classes
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


def unpack(zip_bytes: bytes, directory: Path) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        zf.extractall(directory)
        return zf.namelist()


def test_detached_signature_and_zip(tmp_path: Path, pki: Pki, signer: ServerSigner) -> None:
    doc = office_document()
    sig_xml, zip_bytes = sign_xades_detached(doc, FILENAME, signer)
    names = unpack(zip_bytes, tmp_path)
    assert names == [FILENAME, signature_filename(FILENAME)]
    assert (tmp_path / FILENAME).read_bytes() == doc
    assert (tmp_path / signature_filename(FILENAME)).read_bytes() == sig_xml
    ok, out = xmlsec1_detached(tmp_path, signature_filename(FILENAME), pki)
    assert ok, out
    ok, out = signxml_detached(sig_xml, doc, pki)
    assert ok, out
    report = verify_xades_detached(sig_xml, doc, [pki.ca_pem])
    assert report.valid, report.to_text()
    assert report.document == FILENAME
    assert report.signer == "Jean Dupont"
    assert report.signing_certificate_ok
    assert report.history_label == "Signature validée"
    assert report.to_dict()["valid"] is True
    root = etree.fromstring(sig_xml)
    xades = "{http://uri.etsi.org/01903/v1.3.2#}"
    assert root.find(f".//{xades}MimeType").text == "application/vnd.oasis.opendocument.text"


def test_modified_document_fails_every_verifier(tmp_path: Path, pki: Pki, signer: ServerSigner) -> None:
    doc = office_document()
    sig_xml, zip_bytes = sign_xades_detached(doc, FILENAME, signer)
    unpack(zip_bytes, tmp_path)
    tampered = bytearray(doc)
    tampered[len(tampered) // 2] ^= 0x01
    (tmp_path / FILENAME).write_bytes(bytes(tampered))
    assert not xmlsec1_detached(tmp_path, signature_filename(FILENAME), pki)[0]
    assert not signxml_detached(sig_xml, bytes(tampered), pki)[0]
    report = verify_xades_detached(sig_xml, bytes(tampered), [pki.ca_pem])
    assert not report.valid
    assert not report.document_digest_ok
    assert report.history_label == "signature rejetée"


def test_modified_signed_properties_fail(tmp_path: Path, pki: Pki, signer: ServerSigner) -> None:
    doc = office_document()
    sig_xml, _ = sign_xades_detached(doc, "note.docx", signer)
    forged = re.sub(rb"<xades:SigningTime>\d{4}", b"<xades:SigningTime>1999", sig_xml)
    assert forged != sig_xml
    assert b"<xades:SigningTime>1999" in forged
    (tmp_path / "note.docx").write_bytes(doc)
    (tmp_path / "note.docx.xades.xml").write_bytes(forged)
    assert not xmlsec1_detached(tmp_path, "note.docx.xades.xml", pki)[0]
    assert not signxml_detached(forged, doc, pki)[0]
    assert not verify_xades_detached(forged, doc, [pki.ca_pem]).valid


def test_untrusted_signer(pki: Pki, signer: ServerSigner) -> None:
    doc = office_document()
    sig_xml, _ = sign_xades_detached(doc, "a.xlsx", signer)
    report = verify_xades_detached(sig_xml, doc, [pki.other_ca.cert_pem])
    assert not report.valid
    assert report.document_digest_ok
    assert not report.chain_trusted


@pytest.mark.parametrize("name", ["", "../etc/passwd", "a\\b.doc"])
def test_bad_file_names(signer: ServerSigner, name: str) -> None:
    with pytest.raises(XmlSigningError):
        sign_xades_detached(b"x", name, signer)
