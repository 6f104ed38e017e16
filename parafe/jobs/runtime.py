"""Running jobs: the worker (``parafe worker``), the in-process worker of ``parafe serve``, and ``kick``.

A worker runs ``threads`` executor threads. Each claims a batch of due outbox rows of one kind (a claim
hands each row to one worker per lease period, whatever the number of worker processes and machines) and
executes it (:func:`parafe.jobs.outbox.execute_many`: rows of a kind that has a batch handler — the server
signature, the start of the workflow — run together, with one signing batch and one closing transaction).
When nothing is due, a thread waits on the worker's bell (:mod:`parafe.jobs.wake`) for at most the dispatch
interval. A huey consumer (one thread) runs the periodic tasks (purge, digest, S²LOW, SMS status) and the
"execute row N" messages an earlier version may have left in the queue.

:func:`kicking_tx` is the write transaction of the workflow (``engine.workflow_tx``): right after it commits,
:func:`kick` rings the workers' bells, so that the rows it created run at once and chained steps do not wait
for anybody's next look. A worker checks at start-up that every pending row has a registered kind
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
from parafe.jobs import outbox, wake
from parafe.jobs.current import set_context
from parafe.jobs.queue import get_huey

log = logging.getLogger(__name__)

class _QuietConsumer(Consumer):
    """A huey consumer that leaves the process's signal handlers alone (the host process owns them)."""

    def _set_signal_handlers(self) -> None:
        return None


def kick(ctx: AppContext, item_ids: Iterable[int]) -> None:
    """New outbox rows were committed: wake the workers now (best effort: they look by themselves anyway)."""
    if not list(item_ids):
        return
    try:
        wake.ring(ctx.settings.resolved_home)
    except Exception:  # never fail the caller's committed transaction
        log.warning("kick failed; the workers will pick the rows up", exc_info=True)


@contextmanager
def kicking_tx(ctx: AppContext) -> Iterator[Session]:
    """A write transaction whose new outbox rows are handed to the queue right after the commit."""
    with ctx.db.write() as session:
        yield session
        new_items = outbox.new_items(session)
    kick(ctx, new_items)


BATCH = 32  # rows claimed at once by an executor thread (issue 17: 16 → 32, e2e 99 → 114 documents/s)


class WorkerRuntime:
    """Executor threads over the outbox + a huey consumer for the periodic tasks, in threads of this process."""

    def __init__(self, ctx: AppContext, threads: int | None = None, *, periodic: bool = True,
                 dispatch: bool = True) -> None:
        self.ctx = ctx
        self.threads = threads or workflow_settings().worker_threads
        self.periodic = periodic
        self.dispatch = dispatch
        self.huey = get_huey(ctx)
        self._stop = threading.Event()
        self._bell = wake.Bell()
        self._listener: wake.Listener | None = None
        self._executors: list[threading.Thread] = []
        self._consumer: Consumer | None = None

    def start(self) -> WorkerRuntime:
        outbox.check_registered(self.ctx)
        set_context(self.ctx)
        self._consumer = _QuietConsumer(
            self.huey, workers=1, periodic=self.periodic, initial_delay=0.05, backoff=1.5,
            max_delay=0.5, worker_type="thread", check_worker_health=True)
        self._consumer.start()
        if self.dispatch:
            self._listener = wake.listen(self.ctx.settings.resolved_home, self._bell)
            for index in range(self.threads):
                thread = threading.Thread(target=self._execute_loop, name=f"parafe-executor-{index}", daemon=True)
                thread.start()
                self._executors.append(thread)
        return self

    def _execute_loop(self) -> None:
        interval = workflow_settings().dispatch_interval
        while not self._stop.is_set():
            seen = self._bell.generation()
            try:
                ids = outbox.claim(self.ctx, limit=BATCH, one_kind=True)
            except Exception:
                log.warning("executor: claim failed", exc_info=True)
                ids = []
            if ids:
                try:
                    outbox.execute_many(self.ctx, ids)
                except Exception:  # a claimed row left undone is claimed again when its lease ends
                    log.exception("executor: batch failed")
                continue
            self._bell.wait(seen, interval)

    def stop(self, graceful: bool = True) -> None:
        self._stop.set()
        self._bell.ring()
        for thread in self._executors:
            thread.join(timeout=60 if graceful else 1)
        self._executors = []
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._consumer is not None:
            self._consumer.stop(graceful=graceful)
            self._consumer = None


def start_in_process_worker(ctx: AppContext, *, periodic: bool = True) -> WorkerRuntime:
    """The embedded worker of a single-process ``parafe serve`` (``PARAFE_WORKER_IN_PROCESS``): executor threads
    and, with ``periodic``, the periodic tasks. Returns an object with ``stop()``."""
    return WorkerRuntime(ctx, periodic=periodic).start()


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
