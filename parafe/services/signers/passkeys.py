"""Passkeys (WebAuthn) of the portal's users and the passkey-confirmed signature with a server-held key.

WebAuthn is verified by py_webauthn (``webauthn`` on PyPI, Duo Labs): no CBOR/COSE parsing here.

Enrolment — :func:`begin_registration` / :func:`finish_registration`: an authenticated portal user (client
certificate, or an administrator-created password account) registers a passkey for their account; several
per account. User verification is required. A passkey enrolled after a certificate login is active at once; one
enrolled after a password login waits until an administrator of the subscriber validates it (:func:`validate`),
so that a stolen password alone never leads to a signature. An administrator revokes passkeys (:func:`revoke`).

Signature — :func:`prepare_signature` / :func:`finish_signature`:

1. the documents are prepared exactly as for the local helper (:func:`parafe.services.signers.remote_signing.prepare`,
   with the certificate of the account's server-held key), which fixes the bytes to sign;
2. a nonce is drawn and stored once (:class:`~parafe.db.models.PasskeyChallenge`), and the WebAuthn challenge is
   :func:`binding_challenge`: SHA-256 over a label, the nonce, and for each document its id and the SHA-256
   digests of what will be signed. One assertion confirms the whole batch and nothing else;
3. the assertion must verify (origin, RP id, user presence and verification, signature counter) against a
   non-revoked passkey of the caller, for the challenge recomputed from the server-side session; the nonce is
   then marked used in the same transaction that checks it was not (a replay is refused), and only then is the
   server-held key opened (:func:`parafe.services.signers.server_keys.signer_for`) to sign those bytes;
4. the signed documents go through :func:`parafe.services.signers.remote_signing.finish` (the same PAdES / XAdES / PES
   and the same checks as with the helper), and each signed document gets a history entry naming the passkey
   and its credential id.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import webauthn
from sqlalchemy import delete, or_, select, update
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from parafe.context import AppContext
from parafe.db.models import HistoryEntry, Passkey, PasskeyChallenge, User
from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import Account, Principal
from parafe.services.signers import remote_signing, server_keys

CHALLENGE_TTL = timedelta(minutes=5)
CHALLENGE_LABEL = b"parafe-passkey-signature-v1"
NAME_MAX = 80


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys are for: the portal's host name (RP id) and origin (``https://host[:port]``)."""

    id: str
    origin: str
    name: str = "Parafe"


@dataclass(frozen=True)
class PasskeyView:
    id: int
    user_id: int
    email: str
    name: str
    credential_id: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    pending: bool = False
    validated_by: str | None = None

    @property
    def usable(self) -> bool:
        return self.revoked_at is None and not self.pending


@dataclass(frozen=True)
class SignaturePrepared:
    session_id: str
    nonce: str
    challenge: str  # base64url
    signer: str
    documents: list[dict[str, Any]]  # id, name, kind, digests (hex)
    options: str  # PublicKeyCredentialRequestOptions, JSON


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def binding_challenge(nonce: str, digests: list[tuple[int, list[bytes]]]) -> bytes:
    """The WebAuthn challenge of a signature: SHA-256 of ``label \\n nonce \\n`` then one line per document,
    ``<id>:<hex digest>,<hex digest>…`` (the SHA-256 of each value to sign). The portal's script recomputes it
    from the listed digests before asking the authenticator."""
    text = CHALLENGE_LABEL + b"\n" + nonce.encode("ascii") + b"\n"
    for doc_id, values in digests:
        text += f"{doc_id}:{','.join(d.hex() for d in values)}\n".encode("ascii")
    return hashlib.sha256(text).digest()


def _account(principal: Principal) -> Account:
    if not principal.accounts:
        raise ParafeError(E.AUTH_UNKNOWN_USER, detail="no account")
    return principal.accounts[0]


def _credential_id(credential: dict[str, Any]) -> str:
    raw = credential.get("rawId") or credential.get("id")
    if not isinstance(raw, str) or not raw:
        raise ParafeError(E.PASSKEY_ASSERTION_REFUSED, reason="réponse de l'authentificateur incomplète")
    return raw


def _view(passkey: Passkey, email: str) -> PasskeyView:
    return PasskeyView(passkey.id, passkey.user_id, email, passkey.name, passkey.credential_id, passkey.created_at,
                       passkey.last_used_at, passkey.revoked_at, passkey.revoked_by, bool(passkey.pending),
                       passkey.validated_by)


# --- enrolment ----------------------------------------------------------------------------------------------
def _sweep(session: Any, user_id: int) -> None:
    """Forget the user's stale challenges: registrations and unused signature nonces older than a day (a used
    signature nonce stays: it records which credential confirmed which session)."""
    session.execute(delete(PasskeyChallenge).where(
        PasskeyChallenge.user_id == user_id, PasskeyChallenge.created_at < _now() - timedelta(days=1),
        or_(PasskeyChallenge.purpose == "register", PasskeyChallenge.used_at.is_(None))))


def begin_registration(ctx: AppContext, principal: Principal, rp: RelyingParty) -> str:
    """Creation options (JSON for ``navigator.credentials.create``); the challenge is stored once."""
    account = _account(principal)
    nonce = secrets.token_hex(32)
    challenge = bytes.fromhex(nonce)
    with ctx.db.write() as session:
        _sweep(session, account.user_id)
        existing = list(session.scalars(select(Passkey).where(Passkey.user_id == account.user_id,
                                                              Passkey.revoked_at.is_(None))))
        session.add(PasskeyChallenge(user_id=account.user_id, purpose="register", nonce=nonce,
                                     challenge=bytes_to_base64url(challenge)))
    options = webauthn.generate_registration_options(
        rp_id=rp.id, rp_name=rp.name, user_name=account.email, user_display_name=account.full_name,
        user_id=f"parafe-user-{account.user_id}".encode(), challenge=challenge,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(p.credential_id))
                             for p in existing])
    return webauthn.options_to_json(options)


def finish_registration(ctx: AppContext, principal: Principal, rp: RelyingParty, credential: dict[str, Any],
                        name: str) -> PasskeyView:
    """Verify the authenticator's answer and store the passkey under ``name``."""
    account = _account(principal)
    name = " ".join(str(name or "").split())[:NAME_MAX] or "Clé d'accès"
    try:
        client_data = json.loads(webauthn.base64url_to_bytes(str(credential["response"]["clientDataJSON"])))
        challenge = str(client_data["challenge"])
    except (KeyError, TypeError, ValueError):
        raise ParafeError(E.PASSKEY_REGISTRATION_REFUSED, reason="réponse de l'authentificateur illisible") from None
    with ctx.db.write() as session:
        row = session.scalar(select(PasskeyChallenge).where(
            PasskeyChallenge.user_id == account.user_id, PasskeyChallenge.purpose == "register",
            PasskeyChallenge.challenge == challenge))
        if row is None or row.used_at is not None or _now() - _aware(row.created_at) > CHALLENGE_TTL:
            raise ParafeError(E.PASSKEY_REGISTRATION_REFUSED, reason="demande inconnue, expirée ou déjà utilisée")
        row.used_at = _now()
        try:
            verified = webauthn.verify_registration_response(
                credential=credential, expected_challenge=webauthn.base64url_to_bytes(challenge),
                expected_rp_id=rp.id, expected_origin=rp.origin, require_user_verification=True)
        except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as exc:
            raise ParafeError(E.PASSKEY_REGISTRATION_REFUSED, reason="l'authentificateur n'a pas pu être vérifié",
                              detail=str(exc)) from None
        credential_id = bytes_to_base64url(verified.credential_id)
        if session.scalar(select(Passkey.id).where(Passkey.credential_id == credential_id)) is not None:
            raise ParafeError(E.PASSKEY_REGISTRATION_REFUSED, reason="cette clé d'accès est déjà enregistrée")
        transports = credential.get("response", {}).get("transports") or []
        passkey = Passkey(user_id=account.user_id, credential_id=credential_id,
                          public_key=bytes_to_base64url(verified.credential_public_key),
                          sign_count=verified.sign_count, name=name, pending=principal.method != "certificate",
                          transports=[str(t) for t in transports if isinstance(t, str)][:8])
        session.add(passkey)
        session.flush()
        return _view(passkey, account.email)


def passkeys_of(ctx: AppContext, principal: Principal) -> list[PasskeyView]:
    """The caller's passkeys (every account), newest first, revoked ones included."""
    with ctx.db.read() as session:
        rows = session.execute(select(Passkey, User.email).join(User, User.id == Passkey.user_id)
                               .where(Passkey.user_id.in_(principal.user_ids)).order_by(Passkey.id.desc())).all()
        return [_view(p, email) for p, email in rows]


def passkeys_of_user(ctx: AppContext, admin: Principal, siren: str, email: str) -> list[PasskeyView]:
    """An administrator's view of one user's passkeys (subscriber ``siren``, which ``admin`` administers)."""
    from parafe.db.models import Subscriber

    with ctx.db.read() as session:
        user = session.scalar(select(User).join(Subscriber, Subscriber.id == User.subscriber_id).where(
            Subscriber.siren == siren, User.email == email.strip().lower()))
        if user is None:
            return []
        user = _administered(session, admin, user.id)
        rows = list(session.scalars(select(Passkey).where(Passkey.user_id == user.id).order_by(Passkey.id.desc())))
        return [_view(p, user.email) for p in rows]


def server_key_of_user(ctx: AppContext, admin: Principal, siren: str, email: str) -> str | None:
    """The subject of one user's active server-held key, for their administrator (None: no key)."""
    from parafe.db.models import ServerKey, Subscriber

    with ctx.db.read() as session:
        user = session.scalar(select(User).join(Subscriber, Subscriber.id == User.subscriber_id).where(
            Subscriber.siren == siren, User.email == email.strip().lower()))
        if user is None:
            return None
        _administered(session, admin, user.id)
        key = session.scalar(select(ServerKey).where(ServerKey.user_id == user.id, ServerKey.revoked_at.is_(None)))
        if key is None:
            return None
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(key.certificate_pem.encode())
        where = "jeton PKCS#11" if key.kind == "pkcs11" else "chiffrée sur le serveur"
        return f"{cert.subject.rfc4514_string()} ({where}, valide jusqu'au {cert.not_valid_after_utc:%d/%m/%Y})"


def _administered(session: Any, admin: Principal, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not any(a.is_admin and a.subscriber_id == user.subscriber_id for a in admin.accounts):
        raise ParafeError(E.PASSKEY_NOT_FOUND, detail=f"user {user_id}")
    return user


def validate(ctx: AppContext, admin: Principal, passkey_id: int) -> PasskeyView:
    """Validate a passkey enrolled after a password login (an administrator of its account's subscriber)."""
    with ctx.db.write() as session:
        passkey = session.get(Passkey, passkey_id)
        if passkey is None:
            raise ParafeError(E.PASSKEY_NOT_FOUND, detail=f"passkey {passkey_id}")
        user = _administered(session, admin, passkey.user_id)
        if passkey.pending and passkey.revoked_at is None:
            passkey.pending = False
            passkey.validated_by = admin.email
        return _view(passkey, user.email)


def revoke(ctx: AppContext, admin: Principal, passkey_id: int) -> PasskeyView:
    """Revoke a passkey (an administrator of its account's subscriber); revoking twice is harmless."""
    with ctx.db.write() as session:
        passkey = session.get(Passkey, passkey_id)
        if passkey is None:
            raise ParafeError(E.PASSKEY_NOT_FOUND, detail=f"passkey {passkey_id}")
        user = _administered(session, admin, passkey.user_id)
        if passkey.revoked_at is None:
            passkey.revoked_at = _now()
            passkey.revoked_by = admin.email
        return _view(passkey, user.email)


# --- signature ------------------------------------------------------------------------------------------------
def _signing_key(ctx: AppContext, principal: Principal, document_ids: list[int | str]) -> tuple[Any, list[bytes | str]]:
    """The server-held key of the caller's account that signs (the first account holding one)."""
    for account in principal.accounts:
        key = server_keys.active_key(ctx, account.user_id)
        if key is not None:
            return key, server_keys.certificates(key)
    raise ParafeError(E.SERVER_KEY_MISSING)


def can_sign(ctx: AppContext, principal: Principal) -> tuple[bool, int]:
    """(has a server-held key, number of active passkeys): what the signing page offers."""
    has_key = any(server_keys.active_key(ctx, a.user_id) is not None for a in principal.accounts)
    active = [p for p in passkeys_of(ctx, principal) if p.usable]
    return has_key, len(active)


def prepare_signature(ctx: AppContext, principal: Principal, rp: RelyingParty,
                      document_ids: list[int | str]) -> SignaturePrepared:
    """Prepare the documents with the caller's server-held certificate and the challenge binding their digests."""
    key, certificates = _signing_key(ctx, principal, document_ids)
    with ctx.db.read() as session:
        active = list(session.scalars(select(Passkey).where(Passkey.user_id.in_(principal.user_ids),
                                                            Passkey.revoked_at.is_(None),
                                                            Passkey.pending.is_(False))))
    if not active:
        raise ParafeError(E.PASSKEY_MISSING)
    prepared = remote_signing.prepare(ctx, principal, document_ids, certificates)
    digests = [(d.id, [r.digest for r in d.requests]) for d in prepared.documents]
    nonce = secrets.token_hex(32)
    challenge = binding_challenge(nonce, digests)
    with ctx.db.write() as session:
        _sweep(session, key.user_id)
        session.add(PasskeyChallenge(user_id=key.user_id, purpose="sign", nonce=nonce,
                                     challenge=bytes_to_base64url(challenge), session_id=prepared.session_id))
    options = webauthn.generate_authentication_options(
        rp_id=rp.id, challenge=challenge, user_verification=UserVerificationRequirement.REQUIRED,
        allow_credentials=[PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(p.credential_id))
                           for p in active])
    documents = [{"id": d.id, "name": d.name, "kind": d.kind, "digests": [r.digest.hex() for r in d.requests]}
                 for d in prepared.documents]
    return SignaturePrepared(prepared.session_id, nonce, bytes_to_base64url(challenge), prepared.signer,
                             documents, webauthn.options_to_json(options))


def finish_signature(ctx: AppContext, principal: Principal, rp: RelyingParty, session_id: str,
                     credential: dict[str, Any]) -> list[remote_signing.Outcome]:
    """Check the assertion for this session's digests, then sign with the server-held key and finish."""
    to_sign = remote_signing.data_to_sign(ctx, principal, session_id)  # SIGNING_SESSION_INVALID if not the caller's
    credential_id = _credential_id(credential)
    with ctx.db.read() as session:
        row = session.scalar(select(PasskeyChallenge).where(
            PasskeyChallenge.session_id == session_id, PasskeyChallenge.purpose == "sign",
            PasskeyChallenge.user_id.in_(principal.user_ids)))
        if row is None:
            raise ParafeError(E.SIGNING_SESSION_INVALID, detail="no challenge for this session")
        challenge_id, nonce, stored, key_user = row.id, row.nonce, row.challenge, row.user_id
        if row.used_at is not None or _now() - _aware(row.created_at) > CHALLENGE_TTL:
            raise ParafeError(E.PASSKEY_CHALLENGE_USED)
        passkey = session.scalar(select(Passkey).where(Passkey.credential_id == credential_id))
        if passkey is None or passkey.revoked_at is not None or passkey.user_id not in principal.user_ids:
            raise ParafeError(E.PASSKEY_REVOKED, detail=f"credential {credential_id[:16]}")
        if passkey.pending:
            raise ParafeError(E.PASSKEY_PENDING)
        passkey_id, passkey_name, public_key, count = passkey.id, passkey.name, passkey.public_key, passkey.sign_count
    digests = [(doc_id, [hashlib.sha256(v).digest() for v in values]) for doc_id, values in to_sign]
    expected = binding_challenge(nonce, digests)
    if bytes_to_base64url(expected) != stored:
        raise ParafeError(E.SIGNING_SESSION_INVALID, detail="session state does not match its challenge")
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential, expected_challenge=expected, expected_rp_id=rp.id, expected_origin=rp.origin,
            credential_public_key=webauthn.base64url_to_bytes(public_key), credential_current_sign_count=count,
            require_user_verification=True)
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError) as exc:
        raise ParafeError(E.PASSKEY_ASSERTION_REFUSED,
                          reason="elle ne correspond pas aux documents à signer ou à votre clé d'accès",
                          detail=str(exc)) from None
    with ctx.db.write() as session:
        claimed = session.execute(update(PasskeyChallenge).where(
            PasskeyChallenge.id == challenge_id, PasskeyChallenge.used_at.is_(None))
            .values(used_at=_now(), credential_id=credential_id))
        if getattr(claimed, "rowcount", 0) != 1:
            raise ParafeError(E.PASSKEY_CHALLENGE_USED)
        still = session.get(Passkey, passkey_id)
        if still is None or still.revoked_at is not None or still.pending:
            raise ParafeError(E.PASSKEY_REVOKED)
        still.sign_count = verified.new_sign_count
        still.last_used_at = _now()
    key = server_keys.active_key(ctx, key_user)
    if key is None:
        raise ParafeError(E.SERVER_KEY_MISSING)
    signer = server_keys.signer_for(ctx, key)
    values: dict[int, list[str | bytes]] = {
        doc_id: [signer.sign_raw(value, "sha256") for value in data] for doc_id, data in to_sign}
    outcomes = remote_signing.finish(ctx, principal, session_id, values)
    signed = [o.id for o in outcomes if o.ok]
    if signed:
        with ctx.db.write() as session:
            user = session.get(User, key_user)
            for doc_id in signed:
                session.add(HistoryEntry(
                    document_id=doc_id, state=None, user_id=key_user,
                    user_fullname=user.full_name if user else principal.email,
                    comment=f"Signature par la clé conservée par le parapheur, confirmée par la clé d'accès "
                            f"« {passkey_name} » (identifiant de l'authentificateur : {credential_id})"))
    return outcomes
