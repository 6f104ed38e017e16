"""Remote signing: the server prepares, a key it never sees signs, the server finishes; independent checks."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from parafe.signing import remote
from parafe.signing.errors import RemoteSigningError
from parafe.signing.stamp import StampSpec
from parafe.signing.verify import verify_pdf, verify_pes
from parafe.signing.xades import signature_filename, verify_xades_detached

from .conftest import Pki, make_pes, openssl_cms_verify, pdfsig, signxml_verify_each, xmlsec1_verify_signatures


def client_sign(pki: Pki, req: remote.SignRequest, *, prehashed: bool = False) -> bytes:
    """What the signer's helper does with its own key (here: the test signer's key)."""
    key = pki.signer2.key
    assert isinstance(key, rsa.RSAPrivateKey)
    if prehashed:  # helpers that sign a hash (e.g. CKM_RSA_PKCS over digest_info)
        return key.sign(req.digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    return key.sign(req.data_to_sign, padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("level", ["B-B", "B-T"])
def test_remote_pdf(tmp_path: Path, pki: Pki, pdf5: bytes, tsa_url: str, level: str) -> None:
    session, requests = remote.prepare_pdf(pdf5, pki.signer2.cert, [pki.ca.cert], level=level,
                                           stamp=StampSpec.from_cm(2, 2, page=-1, quality="Adjointe"),
                                           reason="Visa", tsa_url=tsa_url if level == "B-T" else None)
    assert len(requests) == 1
    assert requests[0].to_dict()["algorithm"] == "RSASSA-PKCS1-v1_5-SHA256"
    stored = session.to_json(include_document=False)  # state lives server-side: JSON + the prepared blob
    restored = remote.PdfRemoteSession.from_json(stored, document=session.prepared_pdf)
    value = client_sign(pki, requests[0], prehashed=True)
    out = remote.finish_pdf(restored, [value], [pki.signer2.cert_pem.read_bytes()])
    path = tmp_path / "remote.pdf"
    path.write_bytes(out)
    _, sigs, text = pdfsig(path, pki)
    assert sigs, text
    assert sigs[0].valid, text
    assert sigs[0].trusted, text
    assert sigs[0].total, text
    assert all(ok for ok, _ in openssl_cms_verify(out, pki, tmp_path))
    report = verify_pdf(out, [pki.ca_pem])
    assert report.valid, report.to_text()
    assert report.signatures[0].level == level, report.to_text()
    assert report.signatures[0].signer == "Marie-Hélène Lefèvre"


def test_remote_pdf_refuses_wrong_values_and_stale_sessions(pki: Pki, pdf5: bytes) -> None:
    session, requests = remote.prepare_pdf(pdf5, pki.signer2.cert, [pki.ca.cert])
    signer_key = pki.signer.key
    assert isinstance(signer_key, rsa.RSAPrivateKey)
    wrong_key = signer_key.sign(requests[0].data_to_sign, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(RemoteSigningError):
        remote.finish_pdf(session, [wrong_key])
    with pytest.raises(RemoteSigningError):  # a value over other data
        remote.finish_pdf(session, [client_sign(pki, remote.SignRequest(b"autre chose"))])
    with pytest.raises(RemoteSigningError):  # another certificate than the prepared one
        remote.finish_pdf(session, [client_sign(pki, requests[0])], [pki.signer.cert_pem.read_bytes()])
    with pytest.raises(RemoteSigningError):
        remote.finish_pdf(session, [client_sign(pki, requests[0])], max_age=timedelta(seconds=-1))
    with pytest.raises(RemoteSigningError):
        remote.prepare_pdf(pdf5, pki.signer2.cert, level="B-LT")


def test_remote_xades(tmp_path: Path, pki: Pki) -> None:
    doc = b"PK\x03\x04 pretend office document \x00\xff" * 50
    session, requests = remote.prepare_xades(doc, "contrat.docx", pki.signer2.cert, [pki.ca.cert])
    session = remote.XadesRemoteSession.from_json(session.to_json())
    sig_xml, zip_bytes = remote.finish_xades(session, client_sign(pki, requests[0]))
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        zf.extractall(tmp_path)
    import subprocess

    proc = subprocess.run(["xmlsec1", "--verify", "--trusted-pem", str(pki.ca_pem),
                           signature_filename("contrat.docx")], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert verify_xades_detached(sig_xml, doc, [pki.ca_pem]).valid
    with pytest.raises(RemoteSigningError):
        remote.finish_xades(session, client_sign(pki, remote.SignRequest(b"x")))


@pytest.mark.parametrize("per_bordereau", [True, False])
def test_remote_pes(tmp_path: Path, pki: Pki, per_bordereau: bool) -> None:
    session, requests = remote.prepare_pes(make_pes(3), pki.signer2.cert, [pki.ca.cert],
                                           per_bordereau=per_bordereau, role="Maire")
    assert len(requests) == (3 if per_bordereau else 1)
    session = remote.PesRemoteSession.from_json(session.to_json())
    values = [client_sign(pki, r) for r in requests]
    with pytest.raises(RemoteSigningError):
        remote.finish_pes(session, list(reversed(values)) if per_bordereau else [b"\x00" * 256])
    signed = remote.finish_pes(session, values)
    path = tmp_path / "remote.xml"
    path.write_bytes(signed)
    element = "Bordereau" if per_bordereau else "PES_Aller"
    assert all(ok for ok, _ in xmlsec1_verify_signatures(path, session.signature_ids, element, trusted=pki.ca_pem))
    assert all(ok for ok, _ in signxml_verify_each(signed, pki.ca_pem))
    report = verify_pes(signed, [pki.ca_pem])
    assert report.valid, report.to_text()
    assert {s.signer for s in report.signatures} == {"Marie-Hélène Lefèvre"}
