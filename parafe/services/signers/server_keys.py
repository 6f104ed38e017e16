"""Signing keys held by the server for a signer (issue 20), used only under a fresh passkey assertion.

Two places for the private key, chosen by the operator's settings:

- a PKCS#11 token (``PARAFE_SERVER_KEYS_PKCS11_LIB`` + ``PARAFE_SERVER_KEYS_TOKEN`` +
  ``PARAFE_SERVER_KEYS_PIN_FILE``; SoftHSM2 in the tests and the demo, an HSM in production): the RSA key pair
  is generated inside the token (private key sensitive, not extractable), object label ``parafe-user-<id>-<n>``;
- otherwise encrypted at rest in the database: PKCS#8 PEM encrypted (``BestAvailableEncryption``) under the
  operator's secret, a file (``PARAFE_SERVER_KEYS_SECRET_FILE``, default ``$home/pki/server-keys.secret``,
  created 0600 when missing).

The certificate is issued by the subscriber's CA (``PARAFE_SERVER_KEYS_CA_DIR``, default the dev PKI of
``$home/pki``): subject CN = the signer's full name, emailAddress and rfc822Name = their e-mail; it is bound to
the account (a :class:`~parafe.db.models.UserCertificate` row) so that the signature checks of
:mod:`parafe.services.steps` recognise it as theirs. Nothing here signs on its own: the only caller of
:func:`signer_for` is :func:`parafe.services.signers.passkeys.finish_signature`, after the assertion was verified.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select

from parafe.context import AppContext
from parafe.db.models import ServerKey, User, UserCertificate
from parafe.domain.errors import E, ParafeError
from parafe.security import pki
from parafe.signing.errors import KeyLoadError
from parafe.signing.keys import ServerSigner, _order_chain, _Pkcs11Key, _SoftwareKey

CERT_DAYS = 825


@dataclass(frozen=True)
class ServerKeyInfo:
    user_id: int
    email: str
    kind: str
    subject: str
    fingerprint: str
    not_after: datetime


def _unavailable(reason: str, exc: Exception | None = None) -> ParafeError:
    return ParafeError(E.SERVER_KEY_UNAVAILABLE, reason=reason, detail=repr(exc) if exc else None)


def _pin(ctx: AppContext) -> str:
    path = ctx.settings.server_keys_pin_file
    if path is None:
        raise _unavailable("le code PIN du jeton n'est pas configuré (PARAFE_SERVER_KEYS_PIN_FILE)")
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise _unavailable("le fichier du code PIN du jeton est illisible", exc) from None


def _secret(ctx: AppContext, *, create: bool) -> bytes:
    path = ctx.settings.server_keys_secret_file or ctx.settings.pki_dir / "server-keys.secret"
    if not path.exists() and create:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_urlsafe(48))
    try:
        value = path.read_bytes().strip()
    except OSError as exc:
        raise _unavailable("le secret de chiffrement des clés est illisible", exc) from None
    if len(value) < 32:
        raise _unavailable("le secret de chiffrement des clés est trop court (32 caractères au moins)")
    return value


def _ca(ctx: AppContext) -> pki.CertAndKey:
    directory = ctx.settings.server_keys_ca_dir or ctx.settings.pki_dir
    try:
        return pki.load_ca(directory, trusted=True)
    except pki.PkiError as exc:
        raise _unavailable(f"l'autorité de certification est inutilisable ({exc})", exc) from None


def _issue(ca: pki.CertAndKey, public_key: rsa.RSAPublicKey, email: str, full_name: str,
           organization: str) -> x509.Certificate:
    """The signer's certificate for a public key generated elsewhere (in the token)."""
    now = datetime.now(UTC).replace(microsecond=0)
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization or "Parafe"),
        x509.NameAttribute(NameOID.COMMON_NAME, full_name),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, email),
    ])
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca.cert.subject).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    )
    return builder.sign(ca.key, hashes.SHA256())


def _token_session(ctx: AppContext) -> object:
    import pkcs11

    try:
        token = pkcs11.lib(ctx.settings.server_keys_pkcs11_lib).get_token(token_label=ctx.settings.server_keys_token)
        try:
            return token.open(user_pin=_pin(ctx), rw=True)
        except pkcs11.exceptions.UserAlreadyLoggedIn:  # login is per process: another session holds it
            return token.open(rw=True)
    except ParafeError:
        raise
    except Exception as exc:  # python-pkcs11 raises many unrelated classes
        raise _unavailable("le jeton PKCS#11 est inaccessible", exc) from None


def _generate_in_token(ctx: AppContext, label: str) -> rsa.RSAPublicKey:
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.rsa import encode_rsa_public_key

    session = _token_session(ctx)
    try:
        public, _private = session.generate_keypair(  # type: ignore[attr-defined]
            KeyType.RSA, 2048, label=label, id=label.encode(), store=True,
            private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})
        der = encode_rsa_public_key(public)
    except Exception as exc:
        raise _unavailable("la génération de la clé dans le jeton a échoué", exc) from None
    finally:
        session.close()  # type: ignore[attr-defined]
    key = serialization.load_der_public_key(der)
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def _store_certificate(ctx: AppContext, label: str, cert: x509.Certificate) -> None:
    """The certificate next to its key in the token (same label and CKA_ID), as for a smart card."""
    from pkcs11 import Attribute, CertificateType, ObjectClass

    session = _token_session(ctx)
    try:
        session.create_object({  # type: ignore[attr-defined]
            Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True, Attribute.LABEL: label, Attribute.ID: label.encode(),
            Attribute.SUBJECT: cert.subject.public_bytes(), Attribute.ISSUER: cert.issuer.public_bytes(),
            Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER)})
    except Exception as exc:
        raise _unavailable("l'écriture du certificat dans le jeton a échoué", exc) from None
    finally:
        session.close()  # type: ignore[attr-defined]


def create(ctx: AppContext, email: str, siren: str | None = None) -> ServerKeyInfo:
    """Generate a server-held key for the account ``email`` (in subscriber ``siren`` when the address has
    several accounts), issue its certificate and bind it. Raises ``SERVER_KEY_EXISTS`` when one is active."""
    with ctx.db.read() as session:
        users = [u for u in session.scalars(select(User).where(User.email == email.strip().lower()))
                 if siren is None or u.subscriber.siren == siren]
        if len(users) != 1:
            raise ParafeError(E.AUTH_UNKNOWN_USER, detail=f"{len(users)} account(s) for {email}")
        user = users[0]
        user_id, full_name, address, organization = user.id, user.full_name, user.email, user.subscriber.name
        if session.scalar(select(ServerKey.id).where(ServerKey.user_id == user_id,
                                                     ServerKey.revoked_at.is_(None))) is not None:
            raise ParafeError(E.SERVER_KEY_EXISTS, email=address)
    ca = _ca(ctx)
    label = f"parafe-user-{user_id}-{secrets.token_hex(4)}"
    encrypted: str | None = None
    if ctx.settings.server_keys_pkcs11_lib:
        kind, public = "pkcs11", _generate_in_token(ctx, label)
    else:
        kind = "encrypted"
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = private.public_key()
        encrypted = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(_secret(ctx, create=True))).decode("ascii")
    cert = _issue(ca, public, address, full_name, organization)
    if kind == "pkcs11":
        _store_certificate(ctx, label, cert)
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    fingerprint = pki.fingerprint_sha256(cert)
    with ctx.db.write() as session:
        session.add(ServerKey(user_id=user_id, kind=kind, key_label=label if kind == "pkcs11" else None,
                              encrypted_key=encrypted, certificate_pem=pem,
                              chain_pem=ca.cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                              fingerprint=fingerprint))
        session.add(UserCertificate(user_id=user_id, fingerprint=fingerprint, subject=cert.subject.rfc4514_string(),
                                    not_after=cert.not_valid_after_utc, pem=pem))
    return ServerKeyInfo(user_id, address, kind, cert.subject.rfc4514_string(), fingerprint,
                         cert.not_valid_after_utc)


def active_key(ctx: AppContext, user_id: int) -> ServerKey | None:
    with ctx.db.read() as session:
        key = session.scalar(select(ServerKey).where(ServerKey.user_id == user_id, ServerKey.revoked_at.is_(None))
                             .order_by(ServerKey.id.desc()))
        if key is not None:
            session.expunge(key)
        return key


def certificates(key: ServerKey) -> list[bytes | str]:
    """The signer's certificate then its chain, PEM (what :func:`parafe.services.signers.remote_signing.prepare`
    takes)."""
    return [key.certificate_pem, *([key.chain_pem] if key.chain_pem else [])]


_TOKEN_SESSIONS: dict[tuple[str, str], Any] = {}
_TOKEN_LOCK = threading.Lock()  # one logged-in session per token and process, one operation at a time


def signer_for(ctx: AppContext, key: ServerKey) -> ServerSigner:
    """The private key of ``key``: in the token through the process's one logged-in session (kept open: PKCS#11
    logins are per process), or decrypted for this use only."""
    if key.kind != "pkcs11":
        return _open(ctx, key)
    from pkcs11 import KeyType, ObjectClass

    if not ctx.settings.server_keys_pkcs11_lib:
        raise _unavailable("le module PKCS#11 n'est pas configuré (PARAFE_SERVER_KEYS_PKCS11_LIB)")
    cert = x509.load_pem_x509_certificate(key.certificate_pem.encode())
    chain = x509.load_pem_x509_certificates(key.chain_pem.encode()) if key.chain_pem else []
    slot = (ctx.settings.server_keys_pkcs11_lib, ctx.settings.server_keys_token)
    with _TOKEN_LOCK:
        try:
            if slot not in _TOKEN_SESSIONS:
                _TOKEN_SESSIONS[slot] = _token_session(ctx)
            private = _TOKEN_SESSIONS[slot].get_key(object_class=ObjectClass.PRIVATE_KEY, label=key.key_label)
            if private.key_type != KeyType.RSA:
                raise _unavailable("la clé du jeton n'est pas une clé RSA")
            backend = _Pkcs11Key(_TOKEN_SESSIONS[slot], private, "rsa", int(private.key_length))
        except ParafeError:
            raise
        except Exception as exc:  # python-pkcs11 raises many unrelated classes
            _TOKEN_SESSIONS.pop(slot, None)
            raise _unavailable("la clé du signataire est introuvable dans le jeton", exc) from None
    backend._lock = _TOKEN_LOCK  # every key of the token shares its one session
    try:
        return ServerSigner(cert, _order_chain(cert, chain), backend, label=f"pkcs11:{slot[1]}")
    except KeyLoadError as exc:
        raise _unavailable("la clé du signataire ne correspond pas à son certificat", exc) from None


def _open(ctx: AppContext, key: ServerKey) -> ServerSigner:
    cert = x509.load_pem_x509_certificate(key.certificate_pem.encode())
    chain = x509.load_pem_x509_certificates(key.chain_pem.encode()) if key.chain_pem else []
    try:
        private = serialization.load_pem_private_key((key.encrypted_key or "").encode(), _secret(ctx, create=False))
        return ServerSigner(cert, _order_chain(cert, chain), _SoftwareKey(private), label="encrypted")
    except KeyLoadError as exc:
        raise _unavailable("la clé du signataire ne peut pas être ouverte", exc) from None
    except (ValueError, TypeError) as exc:
        raise _unavailable("la clé chiffrée du signataire ne peut pas être déchiffrée", exc) from None


# --- operator commands: parafe admin server-key add|revoke ----------------------------------------------------
def revoke(ctx: AppContext, email: str) -> int:
    """Revoke the active server-held keys of the accounts ``email`` (the token objects are kept for audit)."""
    with ctx.db.write() as session:
        keys = list(session.scalars(select(ServerKey).join(User, User.id == ServerKey.user_id).where(
            User.email == email.strip().lower(), ServerKey.revoked_at.is_(None))))
        for key in keys:
            key.revoked_at = datetime.now(UTC)
            session.query(UserCertificate).filter(UserCertificate.user_id == key.user_id,
                                                  UserCertificate.fingerprint == key.fingerprint).delete()
        return len(keys)
