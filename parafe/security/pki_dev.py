"""The development PKI under ``$PARAFE_HOME`` (``docs/pki.md``), built with :mod:`parafe.security.pki`: the CA,
the TLS server certificate, the demo users' personal certificates (PEM and PKCS#12) and the "bad" certificates of
the interface document (§4.4: expired, revoked, issued by a CA that is not referenced), with the CRL.
:func:`init_dev_pki` is idempotent and re-issues only what is missing, inconsistent or about to expire."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from parafe.security import pki

DEV_P12_PASSWORD = b"demo"
DEFAULT_SERVER_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
DEFAULT_DEMO_USERS: tuple[tuple[str, str], ...] = (
    ("agent@demo.parafe.test", "Agent Démo"),
    ("signataire@demo.parafe.test", "Sophie Signataire"),
    ("admin@demo.parafe.test", "Admin Démo"),
)
EXPIRED_EMAIL = "expired@demo.parafe.test"
REVOKED_EMAIL = "revoked@demo.parafe.test"
UNKNOWN_CA_EMAIL = "unknown@demo.parafe.test"

_RENEW_BEFORE = dt.timedelta(days=30)
_CRL_REFRESH_BEFORE = dt.timedelta(days=7)
DEV_CRL_DAYS = 365


@dataclass(frozen=True)
class UserFiles:
    """Files of one personal certificate."""

    email: str
    full_name: str
    cert: Path
    key: Path
    p12: Path | None = None


@dataclass(frozen=True)
class DevPki:
    """Paths of the development PKI written by :func:`init_dev_pki`."""

    home: Path
    pki_dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    crl: Path
    revoked_state: Path
    demo_dir: Path
    users: Mapping[str, UserFiles]
    expired: UserFiles
    revoked: UserFiles
    unknown_ca: UserFiles
    unknown_ca_root: Path
    created: tuple[Path, ...] = field(default=())  # files written by this call (empty: nothing to do)


def _safe_file_stem(email: str) -> str:
    if not email or "/" in email or "\\" in email or email.startswith(".") or "\0" in email:
        raise ValueError(f"adresse e-mail inutilisable comme nom de fichier : {email!r}")
    return email


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _usable_leaf(cert_path: Path, key_path: Path, ca: pki.CertAndKey, *, renew: bool) -> pki.CertAndKey | None:
    """The existing leaf if it is readable, matches its key, is issued by ``ca`` and (``renew``) is not
    about to expire; None when it must be (re)issued."""
    if not (cert_path.is_file() and key_path.is_file()):
        return None
    try:
        ck = pki.load_cert_and_key(cert_path, key_path, trusted=True)
        ck.cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, pki.PkiError, InvalidSignature):
        return None
    if renew and ck.cert.not_valid_after_utc - pki.utc_now() < _RENEW_BEFORE:
        return None
    return ck


def init_dev_pki(home: Path, demo_users: Sequence[tuple[str, str]] = DEFAULT_DEMO_USERS) -> DevPki:
    """Create (or complete) the development PKI under ``home``; idempotent.

    Existing files are kept when they are consistent. Re-issued are only: certificates that do not chain to
    the current ``ca.pem`` (the CA was replaced), good certificates expiring within 30 days, and ``crl.pem``
    when missing, stale (next update within 7 days) or not listing every revoked serial.
    """
    home = Path(home).expanduser().resolve()
    pki_dir, demo_dir = home / "pki", home / "demo"
    bad_dir = demo_dir / "bad"
    created: list[Path] = []

    def user_files(email: str, name: str, directory: Path, stem: str, p12: bool) -> UserFiles:
        return UserFiles(
            email,
            name,
            directory / f"{stem}.pem",
            directory / f"{stem}.key",
            directory / f"{stem}.p12" if p12 else None,
        )

    users = {
        email: user_files(email, name, demo_dir, _safe_file_stem(email), True) for email, name in demo_users
    }
    expired = user_files(EXPIRED_EMAIL, "Certificat Expiré", bad_dir, "expired", False)
    revoked_user = user_files(REVOKED_EMAIL, "Certificat Révoqué", bad_dir, "revoked", False)
    unknown = user_files(UNKNOWN_CA_EMAIL, "AC Inconnue", bad_dir, "unknown-ca", False)
    unknown_root = bad_dir / "unknown-ca-root.pem"
    dev = DevPki(
        home=home,
        pki_dir=pki_dir,
        ca_cert=pki_dir / pki.CA_CERT,
        ca_key=pki_dir / pki.CA_KEY,
        server_cert=pki_dir / "server.pem",
        server_key=pki_dir / "server.key",
        crl=pki_dir / pki.CRL_FILE,
        revoked_state=pki_dir / pki.REVOKED_FILE,
        demo_dir=demo_dir,
        users=users,
        expired=expired,
        revoked=revoked_user,
        unknown_ca=unknown,
        unknown_ca_root=unknown_root,
    )

    with _dir_lock(pki_dir):
        # CA
        if dev.ca_cert.exists() or dev.ca_key.exists():
            ca = pki.load_ca(pki_dir, trusted=True)
        else:
            ca = pki.create_ca("Parafe AC de développement")
            pki.write_pem(ca, dev.ca_cert, dev.ca_key)
            created += [dev.ca_cert, dev.ca_key]

        # server
        if _usable_leaf(dev.server_cert, dev.server_key, ca, renew=True) is None:
            pki.write_pem(pki.issue_server_cert(ca, list(DEFAULT_SERVER_HOSTS)), dev.server_cert, dev.server_key,
                      overwrite=True)
            created += [dev.server_cert, dev.server_key]

        # demo users
        for uf in users.values():
            ck = _usable_leaf(uf.cert, uf.key, ca, renew=True)
            if ck is None:
                ck = pki.issue_user_cert(ca, uf.email, uf.full_name)
                pki.write_pem(ck, uf.cert, uf.key, overwrite=True)
                created += [uf.cert, uf.key]
            assert uf.p12 is not None
            if uf.cert in created or not uf.p12.exists():
                pki.write_p12(ck, uf.p12, DEV_P12_PASSWORD, ca, overwrite=True)
                created.append(uf.p12)

        # bad certificates (§4.4)
        if _usable_leaf(expired.cert, expired.key, ca, renew=False) is None:
            now = pki.utc_now()
            ck = pki.issue_user_cert(
                ca,
                expired.email,
                expired.full_name,
                not_before=now - dt.timedelta(days=400),
                not_after=now - dt.timedelta(days=1),
            )
            pki.write_pem(ck, expired.cert, expired.key, overwrite=True)
            created += [expired.cert, expired.key]

        revoked_ck = _usable_leaf(revoked_user.cert, revoked_user.key, ca, renew=True)
        if revoked_ck is None:
            revoked_ck = pki.issue_user_cert(ca, revoked_user.email, revoked_user.full_name)
            pki.write_pem(revoked_ck, revoked_user.cert, revoked_user.key, overwrite=True)
            created += [revoked_user.cert, revoked_user.key]

        if not (unknown.cert.exists() and unknown.key.exists() and unknown_root.exists()):
            other = pki.create_ca("Parafe AC non référencée")
            ck = pki.issue_user_cert(other, unknown.email, unknown.full_name)
            pki.write_pem(ck, unknown.cert, unknown.key, overwrite=True)
            pki.write_file(unknown_root, other.cert_pem(), mode=0o644, overwrite=True)
            created += [unknown.cert, unknown.key, unknown_root]

        # CRL
        revoked_serials = pki.read_revoked(dev.revoked_state)
        state_changed = revoked_ck.serial not in revoked_serials or not dev.revoked_state.exists()
        if state_changed:
            revoked_serials.setdefault(revoked_ck.serial, pki.utc_now())
            pki.write_revoked(dev.revoked_state, revoked_serials)
            created.append(dev.revoked_state)
        if state_changed or not _crl_fresh(dev.crl, ca, revoked_serials):
            pki.write_crl(pki_dir, ca, next_update_days=DEV_CRL_DAYS)
            created.append(dev.crl)

    return replace(dev, created=tuple(created))


def _crl_fresh(path: Path, ca: pki.CertAndKey, serials: Iterable[int]) -> bool:
    if not path.is_file():
        return False
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except ValueError:
        return False
    if crl.issuer != ca.cert.subject or not crl.is_signature_valid(ca.key.public_key()):
        return False
    nxt = crl.next_update_utc
    if nxt is None or nxt - pki.utc_now() < _CRL_REFRESH_BEFORE:
        return False
    return all(crl.get_revoked_certificate_by_serial_number(s) is not None for s in serials)
