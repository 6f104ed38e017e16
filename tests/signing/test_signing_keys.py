"""Keys: PKCS#12 and PKCS#11 (SoftHSM2) signers, parsed once, usable from several threads."""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from parafe.signing.bulk import BulkPdfSigner
from parafe.signing.errors import KeyLoadError
from parafe.signing.keys import ServerSigner, load_pem_signer, load_pkcs11_signer, load_signer, verify_raw
from parafe.signing.pades import sign_pdf
from parafe.signing.pes import sign_pes
from parafe.signing.verify import verify_pdf, verify_pes

from .conftest import P12_PASSWORD, Pki, make_pes, pdfsig, signxml_verify_each, xmlsec1_verify_signatures

SOFTHSM_LIB = "/usr/lib/softhsm/libsofthsm2.so"


def test_pkcs12_loading(pki: Pki) -> None:
    s = load_signer(pki.signer.p12, P12_PASSWORD)
    assert s.common_name == "Jean Dupont"
    assert s.key_type == "rsa"
    assert s.signature_size == 256
    assert [c.subject for c in s.chain] == [pki.ca.cert.subject]
    sig = s.sign_raw(b"data", "sha256")
    assert verify_raw(pki.signer.cert, sig, b"data", "sha256")
    assert not verify_raw(pki.signer.cert, sig, b"datA", "sha256")
    with pytest.raises(KeyLoadError):
        load_signer(pki.signer.p12, "wrong")
    with pytest.raises(KeyLoadError):
        load_signer(pki.dir / "missing.p12", P12_PASSWORD)
    pem = load_pem_signer(pki.signer.cert_pem.read_bytes(), pki.signer.key_pem.read_bytes(),
                          [pki.ca.cert_pem.read_bytes()])
    assert pem.certificate == s.certificate
    with pytest.raises(KeyLoadError):  # a key that does not match the certificate
        load_pem_signer(pki.signer.cert_pem.read_bytes(), pki.signer2.key_pem.read_bytes())


def test_key_is_parsed_once(monkeypatch: pytest.MonkeyPatch, pki: Pki, pdf5: bytes, tmp_path: Path) -> None:
    """After loading, signing never parses a private key again (pyHanko's stock signer does, twice per PDF)."""
    signer = load_signer(pki.signer.p12, P12_PASSWORD)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("private key parsed again")

    for name in ("load_der_private_key", "load_pem_private_key"):
        monkeypatch.setattr(serialization, name, forbidden)
    monkeypatch.setattr("cryptography.hazmat.primitives.serialization.pkcs12.load_key_and_certificates", forbidden)
    outputs = [sign_pdf(pdf5, signer), BulkPdfSigner(signer).sign_one(pdf5), sign_pdf(pdf5, signer)]
    sign_pes(make_pes(2), signer, per_bordereau=True)
    monkeypatch.undo()
    for out in outputs:
        assert verify_pdf(out, [pki.ca_pem]).valid


def test_threads_share_one_signer(pki: Pki, signer: ServerSigner, pdf5: bytes) -> None:
    bulk = BulkPdfSigner(signer)
    with ThreadPoolExecutor(max_workers=4) as pool:
        pdfs = list(pool.map(lambda _: sign_pdf(pdf5, signer), range(4)))
        pdfs += list(pool.map(lambda _: bulk.sign_one(pdf5), range(4)))
    assert all(verify_pdf(p, [pki.ca_pem]).valid for p in pdfs)


@pytest.fixture(scope="session")
def softhsm_token(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A SoftHSM2 token holding the signer's key and certificate (one token directory per worker process)."""
    if not (Path(SOFTHSM_LIB).exists() and shutil.which("softhsm2-util") and shutil.which("pkcs11-tool")):
        pytest.fail("softhsm2 and opensc (pkcs11-tool) are required for the PKCS#11 tests")
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}

    def run(*cmd: str) -> None:
        subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=60)

    run("softhsm2-util", "--init-token", "--free", "--label", "parafe", "--pin", "1234", "--so-pin", "5678")
    run("softhsm2-util", "--import", str(pki.signer.key_pem), "--token", "parafe", "--label", "serveur",
        "--id", "01", "--pin", "1234")
    der = base / "signer.der"
    der.write_bytes(pki.signer.cert.public_bytes(serialization.Encoding.DER))
    ca_der = base / "ca.der"
    ca_der.write_bytes(pki.ca.cert.public_bytes(serialization.Encoding.DER))
    run("pkcs11-tool", "--module", SOFTHSM_LIB, "--token-label", "parafe", "--login", "--pin", "1234",
        "--write-object", str(der), "--type", "cert", "--id", "01", "--label", "serveur")
    run("pkcs11-tool", "--module", SOFTHSM_LIB, "--token-label", "parafe", "--login", "--pin", "1234",
        "--write-object", str(ca_der), "--type", "cert", "--id", "02", "--label", "ca")
    return {"lib": SOFTHSM_LIB, "token": "parafe", "pin": "1234", "key": "serveur"}


def test_pkcs11_signer_signs_pdf_and_pes(tmp_path: Path, pki: Pki, pdf5: bytes, softhsm_token: dict[str, str]) -> None:
    hsm = load_pkcs11_signer(softhsm_token["lib"], softhsm_token["token"], softhsm_token["pin"],
                             softhsm_token["key"])
    assert hsm.common_name == "Jean Dupont"
    assert hsm.label == "pkcs11:parafe"
    assert [c.subject for c in hsm.chain] == [pki.ca.cert.subject]  # chain read from the token
    for out in (sign_pdf(pdf5, hsm), BulkPdfSigner(hsm).sign_one(pdf5)):
        path = tmp_path / "hsm.pdf"
        path.write_bytes(out)
        _, sigs, text = pdfsig(path, pki)
        assert sigs, text
        assert sigs[0].valid, text
        assert sigs[0].trusted, text
        assert verify_pdf(out, [pki.ca_pem]).valid
    pes = sign_pes(make_pes(2), hsm, per_bordereau=True)
    (tmp_path / "hsm.xml").write_bytes(pes)
    ids = ["BORD1_SIG_1", "BORD2_SIG_1"]
    assert all(ok for ok, _ in xmlsec1_verify_signatures(tmp_path / "hsm.xml", ids, "Bordereau",
                                                         trusted=pki.ca_pem))
    assert all(ok for ok, _ in signxml_verify_each(pes, pki.ca_pem))
    assert verify_pes(pes, [pki.ca_pem]).valid
    with ThreadPoolExecutor(max_workers=3) as pool:  # token calls are serialised by the signer
        outs = list(pool.map(lambda _: sign_pdf(pdf5, hsm), range(3)))
    assert all(verify_pdf(o, [pki.ca_pem]).valid for o in outs)


def test_pkcs11_errors(softhsm_token: dict[str, str]) -> None:
    with pytest.raises(KeyLoadError):
        load_pkcs11_signer(softhsm_token["lib"], softhsm_token["token"], "0000", softhsm_token["key"])
    with pytest.raises(KeyLoadError):
        load_pkcs11_signer(softhsm_token["lib"], "no-such-token", softhsm_token["pin"], softhsm_token["key"])
    with pytest.raises(KeyLoadError):
        load_pkcs11_signer(softhsm_token["lib"], softhsm_token["token"], softhsm_token["pin"], "absent")
