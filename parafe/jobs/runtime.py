"""Running jobs: the worker (``parafe worker``), the in-process worker of ``parafe serve``, and ``kick``.

A worker is a huey consumer (thread workers) plus a dispatcher thread that claims due outbox rows and puts them
on the queue. Several workers (processes, machines) may run at once: a claim hands each row to one of them per
lease period, and handlers are idempotent.

:func:`kicking_tx` is the write transaction of the workflow (``engine.workflow_tx``): right after it commits,
:func:`kick` claims the outbox rows it created and enqueues them at once, so that chained steps do not wait for
the dispatcher's next look. A worker checks at start-up that every pending row has a registered kind
(:func:`parafe.jobs.outbox.check_registered`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from huey.consumer import Consumer
from sqlalchemy.orm import Session

from parafe.config import workflow_settings
from parafe.context import AppContext
from parafe.jobs import outbox
from parafe.jobs.queue import get_huey, shared_queue
from parafe.jobs.tasks import enqueue_execute

log = logging.getLogger(__name__)

_state_lock = threading.Lock()
_context: AppContext | None = None
_local_consumers = 0


def set_context(ctx: AppContext) -> None:
    global _context
    with _state_lock:
        _context = ctx


def current_context() -> AppContext:
    """The context the tasks of this process run with (set when a worker starts)."""
    if _context is None:
        from parafe.config import get_settings

        set_context(AppContext.from_settings(get_settings()))
    assert _context is not None
    return _context


class _QuietConsumer(Consumer):  # type: ignore[misc]
    """A huey consumer that leaves the process's signal handlers alone (the host process owns them)."""

    def _set_signal_handlers(self) -> None:
        return None


def kick(ctx: AppContext, item_ids: Iterable[int]) -> None:
    """Hand the given new outbox rows to the queue now (best effort: the dispatcher catches up otherwise)."""
    ids = list(item_ids)
    if not ids or not (shared_queue() or _local_consumers):
        return
    try:
        huey = get_huey(ctx)
        for item_id in outbox.claim(ctx, ids):
            enqueue_execute(huey, item_id)
    except Exception:  # never fail the caller's committed transaction
        log.warning("kick failed; the dispatcher will pick the rows up", exc_info=True)


@contextmanager
def kicking_tx(ctx: AppContext) -> Iterator[Session]:
    """A write transaction whose new outbox rows are handed to the queue right after the commit."""
    with ctx.db.write() as session:
        yield session
        new_items = outbox.new_items(session)
    kick(ctx, new_items)


class WorkerRuntime:
    """A huey consumer + the outbox dispatcher, in threads of this process."""

    def __init__(self, ctx: AppContext, threads: int | None = None, *, periodic: bool = True,
                 dispatch: bool = True) -> None:
        self.ctx = ctx
        self.threads = threads or workflow_settings().worker_threads
        self.periodic = periodic
        self.dispatch = dispatch
        self.huey = get_huey(ctx)
        self._stop = threading.Event()
        self._dispatcher: threading.Thread | None = None
        self._consumer: Consumer | None = None

    def start(self) -> WorkerRuntime:
        global _local_consumers
        outbox.check_registered(self.ctx)
        set_context(self.ctx)
        self._consumer = _QuietConsumer(
            self.huey, workers=self.threads, periodic=self.periodic, initial_delay=0.05, backoff=1.5,
            max_delay=0.5, worker_type="thread", check_worker_health=True)
        self._consumer.start()
        with _state_lock:
            _local_consumers += 1
        if self.dispatch:
            self._dispatcher = threading.Thread(target=self._dispatch_loop, name="parafe-dispatcher", daemon=True)
            self._dispatcher.start()
        return self

    def _dispatch_loop(self) -> None:
        interval = workflow_settings().dispatch_interval
        while not self._stop.is_set():
            try:
                ids = outbox.claim(self.ctx, limit=100)
                for item_id in ids:
                    enqueue_execute(self.huey, item_id)
            except Exception:
                log.warning("dispatcher: claim failed", exc_info=True)
                ids = []
            if not ids:
                self._stop.wait(interval)

    def stop(self, graceful: bool = True) -> None:
        global _local_consumers
        self._stop.set()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=10)
        if self._consumer is not None:
            self._consumer.stop(graceful=graceful)
            self._consumer = None
            with _state_lock:
                _local_consumers -= 1


def start_in_process_worker(ctx: AppContext) -> WorkerRuntime:
    """The embedded worker of ``parafe serve`` (``PARAFE_WORKER_IN_PROCESS``): returns an object with ``stop()``."""
    return WorkerRuntime(ctx).start()


def run_worker(ctx: AppContext, threads: int | None = None) -> int:
    """``parafe worker``: run until SIGTERM / SIGINT, then finish the running jobs and exit."""
    runtime = WorkerRuntime(ctx, threads).start()
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    log.info("parafe worker: %s threads", runtime.threads)
    while not stop.is_set():
        stop.wait(0.5)
    runtime.stop(graceful=True)
    return 0
