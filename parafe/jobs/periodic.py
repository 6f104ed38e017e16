"""Periodic tasks: what runs on a schedule, registered at the composition root like the outbox's kinds.

:mod:`parafe.jobs` knows no service: the composition root (:func:`parafe.composition.install_jobs`) declares
each periodic task with :func:`register` (the daily purge, the digest, the S²LOW PES_Retour fetch, the SMS
delivery status), and the huey scheduler of a worker (:mod:`parafe.jobs.tasks`) runs the ones registered when
its queue was built. A task returns a report (a dict, a count…), logged when it is not empty.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from parafe.context import AppContext


@dataclass(frozen=True)
class Periodic:
    name: str  # the huey task name (stable: a queue may hold it)
    minute: str  # crontab fields, UTC
    hour: str
    run: Callable[[AppContext], object]


_lock = threading.Lock()
_PERIODIC: dict[str, Periodic] = {}


def register(name: str, run: Callable[[AppContext], object], *, minute: str = "*", hour: str = "*") -> None:
    """Declare the periodic task ``name`` (idempotent for the same function; a second function under the same
    name is a wiring error)."""
    task = Periodic(name, minute, hour, run)
    with _lock:
        known = _PERIODIC.get(name)
        if known is not None and known.run is not run:
            raise RuntimeError(f"tâche périodique {name!r} déjà enregistrée par {known.run.__qualname__}")
        _PERIODIC[name] = task


def registered() -> list[Periodic]:
    """The periodic tasks registered in this process, by name."""
    with _lock:
        return [_PERIODIC[name] for name in sorted(_PERIODIC)]
