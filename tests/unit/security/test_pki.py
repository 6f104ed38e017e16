"""The development PKI: file layout and modes, certificate profiles, idempotence, PKCS#12, CRL, and the
agreement of the OpenSSL command line with what we issued."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import shutil
import subprocess
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from parafe.security import pki, pki_dev
from tests.unit.security.conftest import DEMO

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl command line not installed")


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


_Ext = TypeVar("_Ext", bound=x509.ExtensionType)


def ext(cert: x509.Certificate, cls: type[_Ext]) -> x509.Extension[_Ext]:
    return cert.extensions.get_extension_for_class(cls)


def digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------------------------------ layout


def test_layout_and_modes(dev_pki: pki_dev.DevPki) -> None:
    home = dev_pki.home
    expected_private = [
        "pki/ca.key",
        "pki/server.key",
        "demo/agent@demo.parafe.test.key",
        "demo/agent@demo.parafe.test.p12",
        "demo/marie.curie@demo.parafe.test.key",
        "demo/marie.curie@demo.parafe.test.p12",
        "demo/bad/expired.key",
        "demo/bad/revoked.key",
        "demo/bad/unknown-ca.key",
    ]
    expected_public = [
        "pki/ca.pem",
        "pki/server.pem",
        "pki/crl.pem",
        "pki/revoked.txt",
        "demo/agent@demo.parafe.test.pem",
        "demo/marie.curie@demo.parafe.test.pem",
        "demo/bad/expired.pem",
        "demo/bad/revoked.pem",
        "demo/bad/unknown-ca.pem",
        "demo/bad/unknown-ca-root.pem",
    ]
    for rel in expected_private:
        assert mode(home / rel) == 0o600, rel
    for rel in expected_public:
        assert (home / rel).is_file(), rel
        assert mode(home / rel) == 0o644, rel
    # The dataclass points at the same files.
    assert dev_pki.ca_cert == home / "pki/ca.pem"
    assert dev_pki.ca_key == home / "pki/ca.key"
    assert dev_pki.server_cert == home / "pki/server.pem"
    assert dev_pki.server_key == home / "pki/server.key"
    assert dev_pki.crl == home / "pki/crl.pem"
    assert dev_pki.revoked_state == home / "pki/revoked.txt"
    agent = dev_pki.users["agent@demo.parafe.test"]
    assert (agent.cert, agent.key, agent.p12) == (
        home / "demo/agent@demo.parafe.test.pem",
        home / "demo/agent@demo.parafe.test.key",
        home / "demo/agent@demo.parafe.test.p12",
    )
    assert dev_pki.expired.cert == home / "demo/bad/expired.pem"
    assert dev_pki.revoked.cert == home / "demo/bad/revoked.pem"
    assert dev_pki.unknown_ca.cert == home / "demo/bad/unknown-ca.pem"
    assert dev_pki.unknown_ca_root == home / "demo/bad/unknown-ca-root.pem"
    # Keys are unencrypted PKCS#8 PEM.
    assert agent.key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_bad_certificates_use_the_agreed_emails(dev_pki: pki_dev.DevPki) -> None:
    for uf, email in [
        (dev_pki.expired, "expired@demo.parafe.test"),
        (dev_pki.revoked, "revoked@demo.parafe.test"),
        (dev_pki.unknown_ca, "unknown@demo.parafe.test"),
    ]:
        cert = pki.load_cert(uf.cert)
        assert cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)[0].value == email
    ca = pki.load_cert(dev_pki.ca_cert)
    expired = pki.load_cert(dev_pki.expired.cert)
    assert expired.not_valid_after_utc < dt.datetime.now(dt.UTC)
    expired.verify_directly_issued_by(ca)
    pki.load_cert(dev_pki.revoked.cert).verify_directly_issued_by(ca)
    unknown = pki.load_cert(dev_pki.unknown_ca.cert)
    assert unknown.issuer != ca.subject
    unknown.verify_directly_issued_by(pki.load_cert(dev_pki.unknown_ca_root))


def test_idempotent(dev_pki: pki_dev.DevPki) -> None:
    before = digest_tree(dev_pki.home)
    again = pki_dev.init_dev_pki(dev_pki.home, DEMO)
    assert again.created == ()
    assert digest_tree(dev_pki.home) == before
    assert again.users.keys() == dev_pki.users.keys()


def test_completes_missing_files_only(dev_pki: pki_dev.DevPki) -> None:
    agent = dev_pki.users["agent@demo.parafe.test"]
    assert agent.p12 is not None
    agent.p12.unlink()
    dev_pki.crl.unlink()
    before = digest_tree(dev_pki.home)
    again = pki_dev.init_dev_pki(dev_pki.home, [*DEMO, ("new@demo.parafe.test", "Nouvel Arrivant")])
    assert set(again.created) == {
        agent.p12,
        dev_pki.crl,
        again.users["new@demo.parafe.test"].cert,
        again.users["new@demo.parafe.test"].key,
        again.users["new@demo.parafe.test"].p12,
    }
    after = digest_tree(dev_pki.home)
    assert {k: v for k, v in after.items() if k in before} == before
    crl = x509.load_pem_x509_crl(dev_pki.crl.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(pki.load_cert(dev_pki.revoked.cert).serial_number)


def test_new_ca_reissues_everything(dev_pki: pki_dev.DevPki) -> None:
    old_agent = dev_pki.users["agent@demo.parafe.test"].cert.read_bytes()
    dev_pki.ca_cert.unlink()
    dev_pki.ca_key.unlink()
    again = pki_dev.init_dev_pki(dev_pki.home, DEMO)
    ca = pki.load_cert(again.ca_cert)
    for path in [again.server_cert, again.expired.cert, again.revoked.cert,
                 *(u.cert for u in again.users.values())]:
        pki.load_cert(path).verify_directly_issued_by(ca)
    assert again.users["agent@demo.parafe.test"].cert.read_bytes() != old_agent
    assert x509.load_pem_x509_crl(again.crl.read_bytes()).is_signature_valid(ca.public_key())  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ profiles


def test_ca_profile(dev_pki: pki_dev.DevPki) -> None:
    ca = pki.load_cert(dev_pki.ca_cert)
    assert ca.version == x509.Version.v3
    bc = ext(ca, x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    ku = ext(ca, x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign
    assert ku.value.crl_sign
    ski = ext(ca, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.public_key())
    assert isinstance(ca.public_key(), rsa.RSAPublicKey)
    assert ca.public_key().key_size == 2048  # type: ignore[union-attr]
    assert ca.subject == ca.issuer


def test_server_profile(dev_pki: pki_dev.DevPki) -> None:
    cert = pki.load_cert(dev_pki.server_cert)
    assert cert.version == x509.Version.v3
    san = ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not ext(cert, x509.BasicConstraints).value.ca
    key = pki.load_key(dev_pki.server_key)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]


def test_user_profile(dev_pki: pki_dev.DevPki) -> None:
    ca = pki.load_cert(dev_pki.ca_cert)
    cert = pki.load_cert(dev_pki.users["marie.curie@demo.parafe.test"].cert)
    assert cert.version == x509.Version.v3
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Marie Curie"
    assert cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)[0].value == "marie.curie@demo.parafe.test"
    san = ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["marie.curie@demo.parafe.test"]
    assert set(ext(cert, x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
    }
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert ku.value.content_commitment
    assert ku.value.key_encipherment
    assert not ku.value.key_cert_sign
    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert ext(cert, x509.SubjectKeyIdentifier)
    assert cert.serial_number > 0
    assert cert.serial_number.bit_length() <= 159


def test_user_cert_options() -> None:
    ca = pki.create_ca("Test", key_type="ec")
    now = dt.datetime.now(dt.UTC)
    ck = pki.issue_user_cert(
        ca, "a@b.fr", "A B", not_before=now - dt.timedelta(days=3), not_after=now + dt.timedelta(days=1),
        crl_url="http://crl.example/ca.crl", key_type="ec",
    )
    assert ck.cert.not_valid_after_utc.date() == (now + dt.timedelta(days=1)).date()
    dp = ext(ck.cert, x509.CRLDistributionPoints).value
    assert dp[0].full_name[0].value == "http://crl.example/ca.crl"
    with pytest.raises(ValueError, match="invalid e-mail address"):
        pki.issue_user_cert(ca, "not-an-email", "X")
    with pytest.raises(ValueError, match="not_after must be after not_before"):
        pki.issue_user_cert(ca, "a@b.fr", "X", not_before=now, not_after=now - dt.timedelta(days=1))
    assert len(pki.fingerprint_sha256(ck.cert)) == 64
    assert pki.fingerprint_sha256(ck.cert) == pki.fingerprint_sha256(ck.cert).lower()


# ------------------------------------------------------------------------------------------ PKCS#12, files


def test_p12_opens_with_demo_password(dev_pki: pki_dev.DevPki) -> None:
    agent = dev_pki.users["agent@demo.parafe.test"]
    assert agent.p12 is not None
    key, cert, extra = pkcs12.load_key_and_certificates(agent.p12.read_bytes(), b"demo")
    assert cert == pki.load_cert(agent.cert)
    assert key is not None
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    assert extra == [pki.load_cert(dev_pki.ca_cert)]
    with pytest.raises(ValueError, match="PKCS12"):
        pkcs12.load_key_and_certificates(agent.p12.read_bytes(), b"wrong")


@needs_openssl
@pytest.mark.parametrize("legacy", [False, True])
def test_p12_readable_by_openssl(tmp_path: Path, legacy: bool) -> None:
    ca = pki.create_ca("P12 CA")
    ck = pki.issue_user_cert(ca, "p@b.fr", "P B")
    path = tmp_path / "u.p12"
    pki.write_p12(ck, path, b"s3cret", ca, legacy=legacy)
    assert mode(path) == 0o600
    out = subprocess.run([OPENSSL, "pkcs12", "-in", str(path), "-passin", "pass:s3cret", "-nokeys"],  # type: ignore[list-item]
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("BEGIN CERTIFICATE") == 2


def test_write_pem_refuses_to_overwrite(tmp_path: Path) -> None:
    ca = pki.create_ca("W")
    pki.write_pem(ca, tmp_path / "c.pem", tmp_path / "c.key")
    assert mode(tmp_path / "c.key") == 0o600
    with pytest.raises(FileExistsError):
        pki.write_pem(ca, tmp_path / "c.pem", tmp_path / "c.key")
    pki.write_pem(ca, tmp_path / "c.pem", tmp_path / "c.key", overwrite=True)
    loaded = pki.load_cert_and_key(tmp_path / "c.pem", tmp_path / "c.key")
    assert loaded.cert == ca.cert
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.key", "c.pem"]  # no temp file left


def test_load_ca_errors_are_french(tmp_path: Path) -> None:
    with pytest.raises(pki.PkiError, match="n'existe pas"):
        pki.load_ca(tmp_path / "nowhere")
    with pytest.raises(pki.PkiError, match="introuvable"):
        pki.load_ca(tmp_path)


# ------------------------------------------------------------------------------------------ CRL


def test_crl_lists_only_the_revoked_certificate(dev_pki: pki_dev.DevPki) -> None:
    ca = pki.load_cert(dev_pki.ca_cert)
    crl = x509.load_pem_x509_crl(dev_pki.crl.read_bytes())
    assert crl.issuer == ca.subject
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert crl.next_update_utc is not None
    assert crl.next_update_utc > dt.datetime.now(dt.UTC)
    revoked = pki.load_cert(dev_pki.revoked.cert).serial_number
    assert [r.serial_number for r in crl] == [revoked]
    assert pki.read_revoked(dev_pki.revoked_state).keys() == {revoked}


def test_revoke_and_build_crl(tmp_path: Path) -> None:
    ca = pki.init_ca_dir(tmp_path / "ca", "Révocations")
    users = [pki.issue_user_cert(ca, f"u{i}@b.fr", f"U {i}") for i in range(3)]
    pki.revoke(tmp_path / "ca", [users[0].serial])
    first = x509.load_pem_x509_crl((tmp_path / "ca/crl.pem").read_bytes())
    pki.revoke(tmp_path / "ca", [users[2].serial, users[0].serial])
    second = x509.load_pem_x509_crl((tmp_path / "ca/crl.pem").read_bytes())
    assert {r.serial_number for r in second} == {users[0].serial, users[2].serial}
    number = lambda crl: crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number  # noqa: E731
    assert number(second) >= number(first)
    # revocation dates are kept from the state file
    assert second.get_revoked_certificate_by_serial_number(users[0].serial).revocation_date_utc == (  # type: ignore[union-attr]
        first.get_revoked_certificate_by_serial_number(users[0].serial).revocation_date_utc  # type: ignore[union-attr]
    )
    pem = pki.build_crl(ca, [5, 7], next_update_days=2)
    crl = x509.load_pem_x509_crl(pem)
    assert {r.serial_number for r in crl} == {5, 7}
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(days=2)  # type: ignore[operator]
    assert pki.parse_serial("0x1F") == 31
    assert pki.parse_serial(" 42 ") == 42
    assert pki.parse_serial("01:0a") == 266
    with pytest.raises(ValueError, match="numéro de série invalide"):
        pki.parse_serial("douze")


# ------------------------------------------------------------------------------------------ OpenSSL agrees


@needs_openssl
@pytest.mark.parametrize(
    ("which", "plain_ok", "crl_ok"),
    [
        ("agent", True, True),
        ("server", True, True),
        ("expired", False, False),
        ("revoked", True, False),
        ("unknown-ca", False, False),
    ],
)
def test_openssl_verify_agrees(dev_pki: pki_dev.DevPki, which: str, plain_ok: bool, crl_ok: bool) -> None:
    path = {
        "agent": dev_pki.users["agent@demo.parafe.test"].cert,
        "server": dev_pki.server_cert,
        "expired": dev_pki.expired.cert,
        "revoked": dev_pki.revoked.cert,
        "unknown-ca": dev_pki.unknown_ca.cert,
    }[which]
    base = [OPENSSL, "verify", "-CAfile", str(dev_pki.ca_cert)]
    plain = subprocess.run([*base, str(path)], capture_output=True, text=True)  # type: ignore[list-item]
    with_crl = subprocess.run(
        [*base, "-crl_check", "-CRLfile", str(dev_pki.crl), str(path)],  # type: ignore[list-item]
        capture_output=True, text=True,
    )
    assert (plain.returncode == 0) is plain_ok, plain.stdout + plain.stderr
    assert (with_crl.returncode == 0) is crl_ok, with_crl.stdout + with_crl.stderr
    if which == "expired":
        assert "certificate has expired" in plain.stdout + plain.stderr
    if which == "revoked":
        assert "certificate revoked" in with_crl.stdout + with_crl.stderr
    if which == "unknown-ca":
        assert "unable to get local issuer certificate" in plain.stdout + plain.stderr
    if which == "agent":
        purpose = subprocess.run([*base, "-purpose", "sslclient", str(path)],  # type: ignore[list-item]
                                 capture_output=True, text=True)
        assert purpose.returncode == 0, purpose.stdout + purpose.stderr
    if which == "server":
        purpose = subprocess.run([*base, "-purpose", "sslserver", str(path)],  # type: ignore[list-item]
                                 capture_output=True, text=True)
        assert purpose.returncode == 0, purpose.stdout + purpose.stderr
