"""Who is calling: from a verified client certificate or Basic credentials to a :class:`Principal`.

The identity middleware (:mod:`parafe.security.identity`) gives each request a ``RequestIdentity``; this module
maps it to the user accounts it stands for. A certificate is bound to accounts by its SHA-256
fingerprint (one account per subscriber); Basic credentials (argon2 hashes) are for accounts whose
authentication type is BASIC (subscriber admins, spec §2.5.21/§2.5.24); they are throttled per account and per
client address and verified in the same time whether the account exists or not (issue 18).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import Subscriber, User, UserCertificate
from parafe.domain.errors import E, ErrorDef, ParafeError
from parafe.security.identity import RequestIdentity

# Certificate → accounts, kept a few seconds per process: every request needs it, and a binding removed by an
# administrator takes effect within that delay (the certificate itself is verified on every request).
PRINCIPAL_CACHE_SECONDS = 5.0
_BY_FINGERPRINT: dict[str, tuple[float, Principal]] = {}

_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)  # OWASP minimum for argon2id

_CERT_ERRORS: dict[str, ErrorDef] = {
    "missing": E.CERT_MISSING,
    "expired": E.CERT_EXPIRED,
    "revoked": E.CERT_REVOKED,
    "unknown_ca": E.CERT_UNKNOWN_CA,
    "invalid": E.AUTH_UNKNOWN_USER,
}


@dataclass(frozen=True)
class Account:
    """One user account of the caller (a person may have accounts in several subscribers)."""

    user_id: int
    subscriber_id: int
    siren: str
    email: str
    full_name: str
    is_admin: bool


@dataclass(frozen=True)
class Principal:
    email: str
    method: str  # certificate | basic
    accounts: tuple[Account, ...] = field(default_factory=tuple)
    fingerprint: str | None = None

    def account_for(self, siren: str) -> Account | None:
        for account in self.accounts:
            if account.siren == siren:
                return account
        return None

    def account_in(self, subscriber_id: int) -> Account | None:
        for account in self.accounts:
            if account.subscriber_id == subscriber_id:
                return account
        return None

    @property
    def user_ids(self) -> frozenset[int]:
        return frozenset(a.user_id for a in self.accounts)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def check_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    """An argon2 hash of a random secret, with the accounts' parameters (made once per process)."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(_HASHER.hash(secrets.token_urlsafe(24)))
    return _DUMMY_HASH[0]


def _basic(ctx: AppContext, session: Session, login: str, password: str, client: str | None) -> Principal:
    """Basic credentials: throttled per account and per address (:mod:`parafe.services.access.login_throttle`), and
    the same work whether the account exists or not — an unknown login, a certificate-only account or an
    account without a password is verified against a dummy argon2 hash, so that the answer time does not tell
    which accounts exist."""
    from parafe.services.access import login_throttle

    had_failures = login_throttle.check(ctx, login, client)
    users = list(session.scalars(select(User).where(
        User.email == login.strip().lower(), User.active.is_(True), User.authentication_type == "BASIC")))
    candidates = [u for u in users if u.password_hash]
    good = [u for u in candidates if check_password(u.password_hash, password)]
    if not candidates:
        check_password(_dummy_hash(), password)
    if not good:
        login_throttle.failed(ctx, login, client)
        raise ParafeError(E.BAD_CREDENTIALS)
    if had_failures:
        login_throttle.succeeded(ctx, login)
    return Principal(email=good[0].email, method="basic", accounts=_accounts(session, good))


def _accounts(session: Session, users: list[User]) -> tuple[Account, ...]:
    if not users:
        return ()
    sirens = dict(session.execute(
        select(Subscriber.id, Subscriber.siren).where(Subscriber.id.in_({u.subscriber_id for u in users}))).all())
    return tuple(
        Account(u.id, u.subscriber_id, sirens[u.subscriber_id], u.email, u.full_name, u.is_admin) for u in users)


def cached_principal(identity: RequestIdentity) -> Principal | None:
    """The principal of a valid certificate resolved in the last seconds, without touching the database (the
    connectors call it on the event loop and go to a thread only on a miss); None otherwise."""
    verdict = identity.verdict
    if identity.basic is not None or verdict is None or not verdict.ok or not verdict.fingerprint:
        return None
    cached = _BY_FINGERPRINT.get(verdict.fingerprint)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    return None


async def authenticate_async(ctx: AppContext, identity: RequestIdentity) -> Principal:
    """:func:`authenticate` for the connectors' event loop: a certificate resolved in the last seconds answers
    at once, anything else (database, argon2) runs in a worker thread."""
    known = cached_principal(identity)
    if known is not None:
        return known
    return await anyio.to_thread.run_sync(authenticate, ctx, identity)


def authenticate(ctx: AppContext, identity: RequestIdentity) -> Principal:
    """The principal behind a request, or a :class:`ParafeError` saying why it is refused.

    Basic credentials, when present and valid, win (admin methods); otherwise the client certificate decides.
    """
    known = cached_principal(identity)
    if known is not None:
        return known
    with ctx.db.read() as session:
        if identity.basic is not None:
            login, password = identity.basic
            return _basic(ctx, session, login, password, identity.client)
        verdict = identity.verdict
        if verdict is None or verdict.reason == "missing":
            raise ParafeError(E.CERT_MISSING)
        if not verdict.ok:
            raise ParafeError(_CERT_ERRORS.get(verdict.reason, E.AUTH_UNKNOWN_USER))
        users = list(session.scalars(
            select(User).join(UserCertificate, UserCertificate.user_id == User.id)
            .where(UserCertificate.fingerprint == verdict.fingerprint, User.active.is_(True))))
        if not users:
            raise ParafeError(E.AUTH_UNKNOWN_USER, detail="certificate not bound to any account")
        principal = Principal(
            email=users[0].email, method="certificate", accounts=_accounts(session, users),
            fingerprint=verdict.fingerprint)
        if len(_BY_FINGERPRINT) > 4096:
            _BY_FINGERPRINT.clear()
        _BY_FINGERPRINT[verdict.fingerprint or ""] = (time.monotonic() + PRINCIPAL_CACHE_SECONDS, principal)
        return principal


def principal_for_email(ctx: AppContext, email: str) -> Principal:
    """The principal of the active accounts with this e-mail (operator tools and tests act as a user)."""
    with ctx.db.read() as session:
        users = list(session.scalars(select(User).where(User.email == email.strip().lower(), User.active.is_(True))))
        if not users:
            raise ParafeError(E.AUTH_UNKNOWN_USER, detail=f"no account for {email}")
        return Principal(email=users[0].email, method="local", accounts=_accounts(session, users))
