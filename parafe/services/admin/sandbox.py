"""Sandbox subscribers and the marking of sandbox answers (issue 21; the workflow side is
:mod:`parafe.workflow.sandbox`).

- :func:`set_subscriber_sandbox` turns a subscriber's sandbox on or off (``parafe admin subscriber sandbox``);
- :func:`certificate_in_sandbox` tells the ``X-Parafe-Sandbox`` marker whether a client certificate belongs to
  an account of a sandbox subscriber (cached a few seconds per process: it runs on every request);
- :func:`subscriber_ids_in_sandbox` is what the portal's banner asks.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from parafe.context import AppContext
from parafe.db.models import Subscriber, User, UserCertificate
from parafe.services.admin.platform import _subscriber

CACHE_SECONDS = 5.0
_lock = threading.Lock()
_any: dict[int, tuple[float, bool]] = {}
_by_fingerprint: dict[tuple[int, str], tuple[float, bool]] = {}


def set_subscriber_sandbox(ctx: AppContext, siren: str, on: bool) -> None:
    with ctx.db.write() as session:
        _subscriber(session, siren).sandbox = on
    with _lock:
        _any.clear()
        _by_fingerprint.clear()


def subscriber_ids_in_sandbox(ctx: AppContext) -> frozenset[int]:
    with ctx.db.read() as session:
        return frozenset(session.scalars(select(Subscriber.id).where(Subscriber.sandbox.is_(True))))


def _any_sandbox(ctx: AppContext) -> bool:
    now = time.monotonic()
    found = _any.get(id(ctx))
    if found is None or now - found[0] > CACHE_SECONDS:
        with ctx.db.read() as session:
            value = session.scalar(select(Subscriber.id).where(Subscriber.sandbox.is_(True)).limit(1)) is not None
        found = (now, value)
        with _lock:
            _any[id(ctx)] = found
    return found[1]


def certificate_in_sandbox(ctx: AppContext, fingerprint: str) -> bool:
    """Whether the certificate is bound to an account of a sandbox subscriber (or the server is a sandbox)."""
    if ctx.settings.sandbox:
        return True
    if not _any_sandbox(ctx):
        return False
    now = time.monotonic()
    key = (id(ctx), fingerprint)
    found = _by_fingerprint.get(key)
    if found is None or now - found[0] > CACHE_SECONDS:
        with ctx.db.read() as session:
            value = session.scalar(
                select(Subscriber.id).join(User, User.subscriber_id == Subscriber.id)
                .join(UserCertificate, UserCertificate.user_id == User.id)
                .where(UserCertificate.fingerprint == fingerprint, Subscriber.sandbox.is_(True)).limit(1)) is not None
        found = (now, value)
        with _lock:
            if len(_by_fingerprint) > 10_000:
                _by_fingerprint.clear()
            _by_fingerprint[key] = found
    return found[1]


def shown_in_portal(ctx: AppContext, subscriber_ids: list[int]) -> bool:
    """Whether the portal shows the sandbox banner to a person with accounts in these subscribers."""
    if ctx.settings.sandbox:
        return True
    if not subscriber_ids or not _any_sandbox(ctx):
        return False
    return bool(subscriber_ids_in_sandbox(ctx) & set(subscriber_ids))
