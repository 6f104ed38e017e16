"""SQLite writers queue on one lock across threads and processes (parafe.db.session.WriterQueue)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from parafe.db.session import Database


def _database(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'queue.db'}")
    with db.write() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS t (who TEXT, at REAL)"))
    return db


def _write_from_new_database(db: Database, started: Any) -> None:
    """A writer of another process with its own Database (what a second server process is)."""
    own = Database(db.url)
    started.set()
    with own.write() as session:
        session.execute(text("INSERT INTO t VALUES ('child', :at)"), {"at": time.time()})
    own.dispose()


def _write_with_inherited_queue(db: Database, started: Any) -> None:
    """A writer of a forked process using the queue object it inherited from its parent."""
    started.set()
    db.engine.dispose(close=False)  # the pool must not cross a fork; the queue object does
    assert db.writers is not None
    with db.writers.hold(), db.engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES ('child', :at)"), {"at": time.time()})


def _child_writes_only_after_release(tmp_path: Path, writer: Callable[[Database, Any], None]) -> None:
    db = _database(tmp_path)
    assert db.writers is not None
    fork = multiprocessing.get_context("fork")
    started = fork.Event()
    with db.writers.hold():  # opens the lock file in this process, then holds the lock
        child = fork.Process(target=writer, args=(db, started))
        child.start()
        assert started.wait(10)
        time.sleep(0.5)
        released = time.time()
    child.join(20)
    assert child.exitcode == 0
    with db.read() as session:
        at = session.execute(text("SELECT at FROM t WHERE who = 'child'")).scalar_one()
    assert at >= released  # it wrote only once the parent let go


def test_a_writer_of_another_process_waits_for_the_lock_and_then_succeeds(tmp_path: Path) -> None:
    _child_writes_only_after_release(tmp_path, _write_from_new_database)
    writers = Database(f"sqlite:///{tmp_path / 'queue.db'}").writers
    assert writers is not None
    assert writers.path == str(tmp_path / "queue.db") + "-writelock"


def test_a_forked_child_does_not_inherit_the_parents_hold(tmp_path: Path) -> None:
    """flock is held per open file description, and the thread lock's owner is copied by fork: the queue
    starts afresh in a new process."""
    _child_writes_only_after_release(tmp_path, _write_with_inherited_queue)


def test_threads_queue_and_a_thread_may_nest(tmp_path: Path) -> None:
    db = _database(tmp_path)
    assert db.writers is not None
    order: list[str] = []
    with db.writers.hold():
        with db.write() as session:  # nested in the same thread: no deadlock
            session.execute(text("INSERT INTO t VALUES ('nested', 0)"))
        other = threading.Thread(target=lambda: _thread_write(db, order))
        other.start()
        time.sleep(0.3)
        order.append("first released")
    other.join(10)
    assert not other.is_alive()
    assert order == ["first released", "thread wrote"]


def _thread_write(db: Database, order: list[str]) -> None:
    with db.write() as session:
        session.execute(text("INSERT INTO t VALUES ('thread', 0)"))
    order.append("thread wrote")
