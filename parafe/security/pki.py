"""Development PKI: a small certification authority built with ``cryptography``.

It issues the X.509 v3 certificates Parafe needs out of the box: a root CA, a TLS server certificate
and personal client certificates (mTLS identity of people and of "logiciels métier"), plus a CRL. It also
writes the "bad" certificates of the interface document (§4.4: expired, revoked, issued by a CA that is
not referenced) so that every connection error can be exercised.

:func:`parafe.security.pki_dev.init_dev_pki` writes the operator layout under ``$PARAFE_HOME`` (see
``docs/pki.md``); it is idempotent. A CA directory (``--ca DIR`` of ``parafe pki``) always holds ``ca.pem``,
``ca.key``, ``crl.pem`` and ``revoked.txt`` (the state of revoked serials, one ``<decimal serial> <ISO date>``
per line).

This is a tool for development, tests and small deployments; production client certificates come from a
recognised (RGS) CA and only the CA bundle + CRL are configured.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from parafe.security.home_permissions import current_umask

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
KeyType = Literal["rsa", "ec"]

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
CRL_FILE = "crl.pem"
REVOKED_FILE = "revoked.txt"


_CLOCK_SKEW = dt.timedelta(minutes=5)


class PkiError(Exception):
    """A PKI operation failed; the message is meant for the operator (French)."""


@dataclass(frozen=True)
class CertAndKey:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: bytes | None = None) -> bytes:
        """The key as PKCS#8 PEM, unencrypted unless ``password`` is given."""
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)

    @property
    def serial(self) -> int:
        return self.cert.serial_number

    @property
    def fingerprint(self) -> str:
        return fingerprint_sha256(self.cert)


# --------------------------------------------------------------------------------------------- helpers


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key type {key_type!r}")


def fingerprint_sha256(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lower-case hex without colons."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _ski(key: PrivateKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def _aki(ca: CertAndKey) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())


def _validity(
    not_before: dt.datetime | None, not_after: dt.datetime | None, days: int
) -> tuple[dt.datetime, dt.datetime]:
    start = not_before if not_before is not None else utc_now() - _CLOCK_SKEW
    end = not_after if not_after is not None else start + _CLOCK_SKEW + dt.timedelta(days=days)
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("not_before/not_after must be timezone-aware")
    if end <= start:
        raise ValueError("not_after must be after not_before")
    return start, end


def _leaf_builder(
    ca: CertAndKey, subject: x509.Name, key: PrivateKey, start: dt.datetime, end: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_ski(key), critical=False)
        .add_extension(_aki(ca), critical=False)
    )


# --------------------------------------------------------------------------------------------- issuing


def _key_usage(*, digital_signature: bool = True, content_commitment: bool = False,
               key_encipherment: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    """A KeyUsage extension with only the listed uses (CAs: certificates and CRLs; leaves: signatures)."""
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=content_commitment,
        key_encipherment=key_encipherment, data_encipherment=False, key_agreement=False,
        key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )


# Key usage of every CA we issue (root and intermediates): certificates and CRLs only.
_CA_KEY_USAGE = _key_usage(digital_signature=False, cert_sign=True)


def create_ca(
    common_name: str,
    *,
    days: int = 3650,
    organization: str | None = "Parafe",
    key_type: KeyType = "rsa",
) -> CertAndKey:
    """A self-signed root CA (BasicConstraints CA=true, KeyUsage keyCertSign + cRLSign, SKI/AKI)."""
    if not common_name.strip():
        raise ValueError("common_name is empty")
    key = _new_key(key_type)
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    name = x509.Name(attrs)
    start, end = _validity(None, None, days)
    ski = _ski(key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertAndKey(cert, key)


def issue_intermediate_ca(
    ca: CertAndKey,
    common_name: str,
    *,
    days: int = 1825,
    path_length: int | None = 0,
    key_type: KeyType = "rsa",
) -> CertAndKey:
    """A subordinate CA signed by ``ca`` (to mirror real hierarchies: root → issuing CA → people)."""
    key = _new_key(key_type)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Parafe"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    start, end = _validity(None, None, days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(_ski(key), critical=False)
        .add_extension(_aki(ca), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return CertAndKey(cert, key)


def issue_server_cert(
    ca: CertAndKey,
    hostnames: Sequence[str],
    *,
    days: int = 825,
    key_type: KeyType = "rsa",
) -> CertAndKey:
    """A TLS server certificate: SAN with every host name (IP literals become iPAddress), EKU serverAuth."""
    if not hostnames:
        raise ValueError("at least one host name is needed")
    sans: list[x509.GeneralName] = []
    for host in hostnames:
        host = host.strip()
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    key = _new_key(key_type)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0].strip())])
    start, end = _validity(None, None, days)
    cert = (
        _leaf_builder(ca, subject, key, start, end)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(_key_usage(key_encipherment=key_type == "rsa"), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return CertAndKey(cert, key)


def issue_user_cert(
    ca: CertAndKey,
    email: str,
    full_name: str,
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    days: int = 825,
    organization: str | None = None,
    crl_url: str | None = None,
    key_type: KeyType = "rsa",
) -> CertAndKey:
    """A personal certificate: subject CN=full name + emailAddress, SAN rfc822Name, EKU clientAuth +
    emailProtection, KeyUsage digitalSignature + nonRepudiation + keyEncipherment."""
    email = email.strip()
    if "@" not in email or any(c.isspace() for c in email):
        raise ValueError(f"invalid e-mail address {email!r}")
    if not full_name.strip():
        raise ValueError("full_name is empty")
    key = _new_key(key_type)
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs += [
        x509.NameAttribute(NameOID.COMMON_NAME, full_name.strip()),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, email),
    ]
    start, end = _validity(not_before, not_after, days)
    builder = (
        _leaf_builder(ca, x509.Name(attrs), key, start, end)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
        .add_extension(_key_usage(content_commitment=True, key_encipherment=key_type == "rsa"), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
            critical=False,
        )
    )
    if crl_url:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]
            ),
            critical=False,
        )
    return CertAndKey(builder.sign(ca.key, hashes.SHA256()), key)


def build_crl(
    ca: CertAndKey,
    revoked_serials: Iterable[int],
    *,
    next_update_days: int = 30,
    revocation_dates: Mapping[int, dt.datetime] | None = None,
) -> bytes:
    """A CRL (PEM) signed by ``ca`` listing ``revoked_serials``; the CRL number grows with time."""
    now = utc_now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=next_update_days))
        .add_extension(x509.CRLNumber(time.time_ns() // 1_000_000), critical=False)
        .add_extension(_aki(ca), critical=False)
    )
    dates = revocation_dates or {}
    for serial in sorted(set(revoked_serials)):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(dates.get(serial, now))
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


# --------------------------------------------------------------------------------------------- files


def write_file(path: Path, data: bytes, *, mode: int, overwrite: bool) -> None:
    """Atomically write ``data`` (temp file + fsync + rename/link); the mode is set before any byte lands."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} existe déjà")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode & ~current_umask())  # 0644 certificates are 0600 under parafe's umask 077
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the file appeared meanwhile
            except FileExistsError:
                raise FileExistsError(f"{path} existe déjà") from None
            except OSError:  # no hard links on this filesystem
                if path.exists():
                    raise FileExistsError(f"{path} existe déjà") from None
                os.replace(tmp, path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_pem(ck: CertAndKey, cert_path: Path, key_path: Path, *, overwrite: bool = False) -> None:
    """Write the certificate (0644) and its unencrypted PKCS#8 key (0600)."""
    if not overwrite:
        for p in (cert_path, key_path):
            if Path(p).exists():
                raise FileExistsError(f"{p} existe déjà")
    write_file(Path(key_path), ck.key_pem(), mode=0o600, overwrite=overwrite)
    write_file(Path(cert_path), ck.cert_pem(), mode=0o644, overwrite=overwrite)


def p12_bytes(
    ck: CertAndKey,
    password: bytes,
    *,
    ca: CertAndKey | x509.Certificate | Sequence[x509.Certificate] | None = None,
    friendly_name: str | None = None,
    legacy: bool = False,
) -> bytes:
    """PKCS#12 with key + certificate + CA chain. ``legacy`` uses SHA-1/3DES for very old importers;
    the default (PBES2, AES-256, SHA-256 MAC) is read by OpenSSL ≥ 1.1, NSS, Windows 10+ and macOS 14+."""
    if isinstance(ca, CertAndKey):
        cas: list[x509.Certificate] = [ca.cert]
    elif isinstance(ca, x509.Certificate):
        cas = [ca]
    else:
        cas = list(ca or [])
    algo = pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC if legacy else pkcs12.PBES.PBESv2SHA256AndAES256CBC
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048 if legacy else 100_000)
        .key_cert_algorithm(algo)
        .hmac_hash(hashes.SHA1() if legacy else hashes.SHA256())  # noqa: S303 - legacy PKCS#12 MAC only
        .build(password)
    )
    name = (friendly_name or _subject_cn(ck.cert) or "parafe").encode()
    return pkcs12.serialize_key_and_certificates(name, ck.key, ck.cert, cas or None, encryption)


def write_p12(
    ck: CertAndKey,
    path: Path,
    password: bytes,
    ca: CertAndKey | x509.Certificate | Sequence[x509.Certificate] | None = None,
    *,
    legacy: bool = False,
    overwrite: bool = False,
) -> None:
    """Write a password-protected PKCS#12 (mode 0600) holding key, certificate and CA certificate(s)."""
    write_file(Path(path), p12_bytes(ck, password, ca=ca, legacy=legacy), mode=0o600, overwrite=overwrite)


def load_cert(path: Path) -> x509.Certificate:
    """The first certificate of a PEM (or DER) file."""
    data = Path(path).read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def load_key(path: Path, password: bytes | None = None, *, trusted: bool = False) -> PrivateKey:
    """A PEM private key. ``trusted`` skips the (slow) RSA consistency checks, for our own files only."""
    key = serialization.load_pem_private_key(
        Path(path).read_bytes(), password, unsafe_skip_rsa_key_validation=trusted
    )
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path} : type de clé non pris en charge")
    return key


def load_cert_and_key(cert_path: Path, key_path: Path, *, trusted: bool = False) -> CertAndKey:
    ck = CertAndKey(load_cert(cert_path), load_key(key_path, trusted=trusted))
    if _spki(ck.cert.public_key()) != _spki(ck.key.public_key()):
        raise PkiError(f"{key_path} ne correspond pas au certificat {cert_path}")
    return ck


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_ca(directory: Path, *, trusted: bool = False) -> CertAndKey:
    """The CA of a CA directory (``ca.pem`` + ``ca.key``)."""
    directory = Path(directory)
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if not directory.is_dir():
        raise PkiError(f"Le répertoire d'AC {directory} n'existe pas.")
    for p in (cert_path, key_path):
        if not p.is_file():
            raise PkiError(f"Fichier d'AC introuvable : {p}")
    try:
        return load_cert_and_key(cert_path, key_path, trusted=trusted)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"AC illisible dans {directory} : {exc}") from exc


def _subject_cn(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


# --------------------------------------------------------------------------------------------- CRL state


def read_revoked(path: Path) -> dict[int, dt.datetime]:
    """The revoked-serials state file: ``<serial> [ISO date]`` per line; ``#`` starts a comment."""
    result: dict[int, dt.datetime] = {}
    if not Path(path).exists():
        return result
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        serial = parse_serial(parts[0])
        when = dt.datetime.fromisoformat(parts[1]) if len(parts) > 1 else utc_now()
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        result[serial] = when
    return result


def write_revoked(path: Path, revoked: Mapping[int, dt.datetime]) -> None:
    lines = ["# Serials revoked by this CA: <decimal serial> <revocation date>"]
    lines += [f"{s} {d.isoformat()}" for s, d in sorted(revoked.items())]
    write_file(path, ("\n".join(lines) + "\n").encode(), mode=0o644, overwrite=True)


def parse_serial(text: str) -> int:
    """A serial number written in decimal, ``0x``-hex or colon-separated hex (``01:a2:…``)."""
    t = text.strip().lower()
    try:
        if t.startswith("0x"):
            return int(t[2:], 16)
        if ":" in t:
            return int(t.replace(":", ""), 16)
        return int(t, 10)
    except ValueError:
        raise ValueError(f"numéro de série invalide : {text!r}") from None


def write_crl(ca_dir: Path, ca: CertAndKey | None = None, *, next_update_days: int = 30) -> Path:
    """(Re)issue ``crl.pem`` of a CA directory from its ``revoked.txt``."""
    ca_dir = Path(ca_dir)
    ca = ca or load_ca(ca_dir)
    revoked = read_revoked(ca_dir / REVOKED_FILE)
    pem = build_crl(ca, revoked, next_update_days=next_update_days, revocation_dates=revoked)
    write_file(ca_dir / CRL_FILE, pem, mode=0o644, overwrite=True)
    return ca_dir / CRL_FILE


def revoke(
    ca_dir: Path, serials: Iterable[int], *, ca: CertAndKey | None = None, next_update_days: int = 30
) -> Path:
    """Add serials to ``revoked.txt`` and re-issue ``crl.pem``."""
    ca_dir = Path(ca_dir)
    ca = ca or load_ca(ca_dir)
    revoked = read_revoked(ca_dir / REVOKED_FILE)
    now = utc_now()
    for s in serials:
        revoked.setdefault(s, now)
    write_revoked(ca_dir / REVOKED_FILE, revoked)
    return write_crl(ca_dir, ca, next_update_days=next_update_days)


def init_ca_dir(
    directory: Path, common_name: str, *, days: int = 3650, overwrite: bool = False, crl_days: int = 30
) -> CertAndKey:
    """Create a CA directory: ``ca.pem``, ``ca.key`` (0600), an empty ``revoked.txt`` and ``crl.pem``."""
    directory = Path(directory)
    if not overwrite:
        for name in (CA_CERT, CA_KEY):
            if (directory / name).exists():
                raise FileExistsError(f"{directory / name} existe déjà")
    ca = create_ca(common_name, days=days)
    write_pem(ca, directory / CA_CERT, directory / CA_KEY, overwrite=overwrite)
    write_revoked(directory / REVOKED_FILE, {})
    write_crl(directory, ca, next_update_days=crl_days)
    return ca
