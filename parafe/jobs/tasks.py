"""Huey tasks of Parafe: execute one outbox row, and the daily purge (periodic).

The task bodies need the process's :class:`~parafe.services.context.AppContext`, installed by
:mod:`parafe.jobs.runtime` when a worker starts.
"""

from __future__ import annotations

import logging
from typing import Any

from huey import Huey, crontab

log = logging.getLogger(__name__)

EXECUTE = "parafe_execute"
PURGE = "parafe_purge"

_EXECUTE_TASKS: dict[int, Any] = {}


def register(huey: Huey) -> None:
    """Register the tasks on ``huey`` (once per instance)."""

    @huey.task(name=EXECUTE)
    def execute_outbox(item_id: int) -> None:
        from parafe.jobs import outbox
        from parafe.jobs.runtime import current_context

        outbox.execute(current_context(), item_id)

    @huey.periodic_task(crontab(hour="3", minute="17"), name=PURGE)
    def purge_daily() -> None:
        from parafe.jobs.runtime import current_context
        from parafe.jobs.schedule import purge

        report = purge(current_context())
        log.info("purge: %s", report)

    _EXECUTE_TASKS[id(huey)] = execute_outbox


def enqueue_execute(huey: Huey, item_id: int) -> Any:
    """Put "execute outbox row ``item_id``" on the queue."""
    return _EXECUTE_TASKS[id(huey)](item_id)
