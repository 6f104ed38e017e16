"""Throttling of Basic authentication (issue 18): per account and per client address, with back-off.

Every failed Basic authentication counts one failure for the login (lower case, whether an account exists or not:
the answer must not tell) and one for the client address, in ``login_throttle`` — in the database, so that every
server process and node agrees. Past ``PARAFE_LOGIN_FREE_FAILURES`` failures of an account (or
``PARAFE_LOGIN_ADDRESS_FREE_FAILURES`` of an address), each new failure blocks the key for
``PARAFE_LOGIN_BACKOFF_SECONDS * 2**(extra failures - 1)`` seconds, capped at ``PARAFE_LOGIN_BACKOFF_MAX_SECONDS``.
A blocked key is refused with ``LOGIN_THROTTLED`` (255, HTTP 429) before any password is checked, so a right
password does not get in while the back-off lasts. A success clears the account's counter (not the address's:
one good account does not whitewash an address that tries others). Failures older than
``PARAFE_LOGIN_FAILURE_WINDOW_SECONDS`` are forgotten.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import LoginThrottle, utcnow
from parafe.domain.errors import E, ParafeError
from parafe.notify.mail import aware

ACCOUNT = "account"
ADDRESS = "address"


def _keys(login: str, address: str | None) -> list[tuple[str, str]]:
    keys = [(ACCOUNT, login.strip().lower()[:255])]
    if address:
        keys.append((ADDRESS, address[:255]))
    return keys


def check(ctx: AppContext, login: str, address: str | None) -> bool:
    """Raise ``LOGIN_THROTTLED`` when the account or the address is in its back-off period; returns whether
    the account has failures on record (a success then clears them)."""
    now = utcnow()
    keys = _keys(login, address)
    with ctx.db.read() as session:
        rows = list(session.scalars(select(LoginThrottle).where(or_(*(
            and_(LoginThrottle.scope == scope, LoginThrottle.key == key) for scope, key in keys)))))
    waits = [aware(row.blocked_until) - now for row in rows
             if row.blocked_until is not None and aware(row.blocked_until) > now]
    if waits:
        seconds = max(1, math.ceil(max(waits).total_seconds()))
        raise ParafeError(E.LOGIN_THROTTLED, seconds=seconds, detail=f"back-off of {seconds} s in force")
    return any(row.scope == ACCOUNT for row in rows)


def _row(session: Session, scope: str, key: str) -> LoginThrottle:
    row = session.scalar(select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.key == key)
                         .with_for_update())
    if row is None:
        try:
            with session.begin_nested():  # another process may create the same row
                row = LoginThrottle(scope=scope, key=key, failures=0, last_failure_at=utcnow())
                session.add(row)
        except IntegrityError:
            row = session.scalar(select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.key == key)
                                 .with_for_update())
    assert row is not None
    return row


def _block(failures: int, free: int, base: float, cap: float, now: datetime) -> datetime | None:
    extra = failures - free
    if extra <= 0:
        return None
    return now + timedelta(seconds=min(base * (2 ** min(extra - 1, 30)), cap))


def failed(ctx: AppContext, login: str, address: str | None) -> None:
    """Count one failed authentication for the login and the address (and start or extend their back-off)."""
    s = ctx.settings
    now = utcnow()
    window = timedelta(seconds=s.login_failure_window_seconds)
    with ctx.db.write() as session:
        for scope, key in _keys(login, address):
            row = _row(session, scope, key)
            if aware(row.last_failure_at) < now - window:
                row.failures = 0
            row.failures += 1
            row.last_failure_at = now
            free = s.login_free_failures if scope == ACCOUNT else s.login_address_free_failures
            row.blocked_until = _block(row.failures, free, s.login_backoff_seconds, s.login_backoff_max_seconds, now)


def succeeded(ctx: AppContext, login: str) -> None:
    """A right password: the account's failures are forgotten."""
    key = _keys(login, None)[0][1]
    with ctx.db.write() as session:
        session.execute(delete(LoginThrottle).where(LoginThrottle.scope == ACCOUNT, LoginThrottle.key == key))


def purge(ctx: AppContext) -> int:
    """Drop the rows whose failures are older than the window and whose back-off is over (housekeeping)."""
    s = ctx.settings
    now = utcnow()
    cutoff = now - timedelta(seconds=s.login_failure_window_seconds)
    with ctx.db.write() as session:
        result = session.execute(delete(LoginThrottle).where(
            LoginThrottle.last_failure_at < cutoff,
            (LoginThrottle.blocked_until.is_(None)) | (LoginThrottle.blocked_until < now)))
        return int(getattr(result, "rowcount", 0) or 0)
