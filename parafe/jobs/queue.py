"""The huey instance of this process, chosen by setting (``PARAFE_QUEUE``).

- ``sqlite`` (default): ``$PARAFE_HOME/queue.db``, shared by every process of one machine;
- ``postgres``: ``PARAFE_QUEUE_URL``, else the database URL when it is PostgreSQL (tables ``parafe_huey_*``);
- ``redis``: ``PARAFE_QUEUE_URL`` (default ``redis://127.0.0.1:6379/0``; needs the ``redis`` package);
- ``memory``: in-process only (tests and one-process tools).

The queue only carries "execute outbox row N" messages: the outbox table is the source of truth (docs/spec/DESIGN.md).
Results are not stored. Tasks are registered by :mod:`parafe.jobs.tasks` on the instance built here.
"""

from __future__ import annotations

import threading
import time

from huey import Huey, MemoryHuey, PostgresHuey, RedisHuey, SqliteHuey

from parafe.config import workflow_settings
from parafe.context import AppContext

_lock = threading.Lock()
_instances: dict[str, Huey] = {}

QUEUE_NAME = "parafe"


def _postgres_dsn(ctx: AppContext, explicit: str | None) -> str:
    url = explicit or ctx.settings.db_url
    if not url.startswith("postgresql"):
        raise RuntimeError("PARAFE_QUEUE=postgres demande PARAFE_QUEUE_URL ou une base PostgreSQL")
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url


def queue_key(ctx: AppContext) -> str:
    """What identifies the queue of ``ctx`` (one huey instance per distinct queue in a process)."""
    s = workflow_settings()
    if s.queue == "sqlite":
        return f"sqlite:{ctx.settings.resolved_home / 'queue.db'}"
    if s.queue == "postgres":
        return f"postgres:{_postgres_dsn(ctx, s.queue_url)}"
    if s.queue == "redis":
        return f"redis:{s.queue_url or 'redis://127.0.0.1:6379/0'}"
    return f"memory:{id(ctx)}"


def build_huey(ctx: AppContext) -> Huey:
    """A new huey instance for the configured backend (tasks not registered yet)."""
    s = workflow_settings()
    common: dict[str, object] = {"results": False, "utc": True}
    if s.queue == "sqlite":
        path = ctx.settings.resolved_home / "queue.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(QUEUE_NAME, filename=str(path), timeout=30, **common)
    if s.queue == "postgres":
        return _postgres_huey(_postgres_dsn(ctx, s.queue_url), common)
    if s.queue == "redis":
        return RedisHuey(QUEUE_NAME, url=s.queue_url or "redis://127.0.0.1:6379/0", **common)
    if s.queue == "memory":
        return MemoryHuey(QUEUE_NAME, **common)
    raise RuntimeError(f"PARAFE_QUEUE inconnu : {s.queue!r} (sqlite, postgres, redis ou memory)")


def _postgres_huey(dsn: str, common: dict[str, object]) -> Huey:
    """PostgresHuey, whose tables are created at construction: processes starting together on a new database race
    on ``CREATE TABLE IF NOT EXISTS`` (a unique violation in ``pg_type``); the loser retries (seen in the chaos run,
    docs/chaos.md)."""
    from psycopg import errors

    for attempt in range(10):
        try:
            return PostgresHuey(QUEUE_NAME, dsn=dsn, table_prefix="parafe_huey", **common)
        except (errors.UniqueViolation, errors.DuplicateTable, errors.DuplicateObject):
            if attempt == 9:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def get_huey(ctx: AppContext) -> Huey:
    """The huey instance of ``ctx``'s queue in this process, with Parafe's tasks registered."""
    key = queue_key(ctx)
    with _lock:
        huey = _instances.get(key)
        if huey is None:
            from parafe.jobs.tasks import register

            huey = build_huey(ctx)
            register(huey)
            _instances[key] = huey
        return huey
