"""Huey tasks of Parafe: the periodic ones registered at the composition root (:mod:`parafe.jobs.periodic`:
daily purge, digest, S²LOW PES_Retour fetch, SMS status) and "execute outbox row N", which earlier versions
queued (the executors of :mod:`parafe.jobs.runtime` now claim the rows themselves; messages left in a queue
still run).

The task bodies run with the process's :class:`~parafe.context.AppContext` (:mod:`parafe.jobs.current`,
installed when a worker starts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from huey import Huey, crontab

from parafe.jobs import outbox, periodic
from parafe.jobs.current import current_context

log = logging.getLogger(__name__)

EXECUTE = "parafe_execute"


def register(huey: Huey) -> None:
    """Register the tasks on ``huey`` (once per instance): "execute row N" and every periodic task registered
    in this process so far."""

    @huey.task(name=EXECUTE)
    def execute_outbox(item_id: int) -> None:
        outbox.execute(current_context(), item_id)

    for task in periodic.registered():
        huey.periodic_task(crontab(minute=task.minute, hour=task.hour), name=task.name)(_body(task))


def _body(task: periodic.Periodic) -> Callable[[], None]:
    def run_periodic() -> None:
        report = task.run(current_context())
        if report:
            log.info("%s: %s", task.name, report)

    run_periodic.__name__ = task.name
    run_periodic.__doc__ = task.run.__doc__
    return run_periodic
