"""Database engine and sessions.

SQLite runs in WAL mode with foreign keys on; write transactions start with ``BEGIN IMMEDIATE`` so that two
writers never deadlock on a lock upgrade, read transactions use a deferred ``BEGIN``. SQLite writers of every
thread and every server process queue on one lock (a thread lock, then ``flock`` on ``<database>-writelock``)
before ``BEGIN IMMEDIATE``: a waiting writer is woken the moment the lock is released, where SQLite's own busy
handler polls with sleeps of up to 100 ms (measured: with two server processes, deposits per second fell by a
third and latencies doubled). PostgreSQL is used as is.
``Database.write()`` and ``Database.read()`` are the two context managers the services use.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

_WRITE = "parafe_write"


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(_WRITE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class WriterQueue:
    """Serialises SQLite write transactions across threads and processes (reentrant within a thread).

    ``path`` is the lock file (None for an in-memory database: the thread lock alone). A forked child starts
    with a fresh state: it must not share its parent's open file description (``flock`` is held per
    description) nor believe it holds the lock its parent's thread held at the fork."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._reset()
        _QUEUES.add(self)

    def _reset(self) -> None:
        self._lock = threading.RLock()
        self._local = threading.local()
        self._fd: int | None = None

    def _file(self) -> int | None:
        if self.path is None:
            return None
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._lock:
            depth = getattr(self._local, "depth", 0)
            fd = self._file() if depth == 0 else None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # releases the GIL while it waits
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth = depth
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)


_QUEUES: weakref.WeakSet[WriterQueue] = weakref.WeakSet()


def _reset_queues_in_child() -> None:
    for queue in list(_QUEUES):
        if queue._fd is not None:
            # closing the child's copy does not release the parent's lock (released when all copies close)
            with contextlib.suppress(OSError):
                os.close(queue._fd)
        queue._reset()


os.register_at_fork(after_in_child=_reset_queues_in_child)


def _sqlite_file(engine: Engine) -> str | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` (``sqlite:///…`` or ``postgresql+psycopg://…``) with Parafe's settings."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        _setup_sqlite(engine)
    else:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        engine = create_engine(url, **kwargs)
        _ping_idle_connections(engine)
    return engine


# A pooled PostgreSQL connection idle for longer than this is pinged before use (a restarted server or a
# firewall may have dropped it); a busy one is not: SQLAlchemy's pool_pre_ping pinged on every checkout, two
# extra round trips per deposit. A connection that fails while in use invalidates the pool as usual.
IDLE_PING_SECONDS = 10.0


def _ping_idle_connections(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["parafe_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("parafe_idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the driver's own error: the pool replaces the connection
            raise DisconnectionError(str(exc)) from exc
        if not alive:
            raise DisconnectionError("ping failed")


class Database:
    """An engine plus read and write session factories."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        # PostgreSQL reads of the hot paths run without BEGIN/ROLLBACK (two round trips fewer); SQLite's reads
        # keep their transaction (the BEGIN above).
        self._reader = self.engine if self.is_sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        sqlite_file = _sqlite_file(self.engine) if self.is_sqlite else None
        self.writers = WriterQueue(sqlite_file + "-writelock" if sqlite_file else None) if self.is_sqlite else None

    def _queued(self) -> AbstractContextManager[None]:
        """Where SQLite writers wait their turn (nothing to wait for on PostgreSQL)."""
        return self.writers.hold() if self.writers is not None else contextlib.nullcontext()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on any exception."""
        with self._queued(), self._write() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction, ended when the session closes (loaded objects stay usable, detached)."""
        with self._read() as session:
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A write transaction on a bare connection (Core statements, no ORM session): committed on success,
        rolled back on any exception. Same queueing as :meth:`write`."""
        with self._queued(), self._write_engine.begin() as connection:
            yield connection

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A bare connection for reads (Core statements, no ORM session): for hot paths where the session's
        bookkeeping costs more than the queries. Each statement sees committed data (on PostgreSQL the
        statements are not grouped in one transaction)."""
        with self._reader.connect() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()


_KEPT = "parafe_kept"
_Model = TypeVar("_Model")


def get_kept(session: Session, model: type[_Model], ident: Any) -> _Model | None:
    """``session.get`` whose result the session keeps until it closes. SQLAlchemy's identity map holds its
    objects weakly: a row nobody references any more (a batch's circuit, its depositor, its subscriber) is
    collected, and the next ``get`` of the same id in the same transaction reads it again (issue 17: 5 SELECTs
    per document of a batch of the ``serveur`` circuit)."""
    kept: dict[tuple[type[Any], Any], Any] = session.info.setdefault(_KEPT, {})
    key = (model, ident)
    if key not in kept:
        kept[key] = session.get(model, ident)
    found: _Model | None = kept[key]
    return found
