"""Digiposte (electronic safe of the recipient), Maileva (postal mail) and the electronic vault, as simulators.

These external services cannot be reached from here (DECISIONS D13). Each is an interface with one method,
``deposit(key, name, data, metadata) -> remote id``, idempotent on ``key``, and a simulator that keeps what it
receives under ``$PARAFE_HOME/simulators/<service>/`` (see :class:`~parafe.transmission.simstore.SimStore`).
The engine writes the outcome in the document's history.
"""

from __future__ import annotations

from typing import Protocol

from parafe.context import AppContext
from parafe.transmission.simstore import SimStore


class DepositService(Protocol):
    name: str

    def deposit(self, key: str, filename: str, data: bytes, metadata: dict[str, str]) -> str: ...


class SimulatedService:
    """A simulator of Digiposte, Maileva or the vault: accepts every deposit once and answers an id."""

    def __init__(self, ctx: AppContext, name: str) -> None:
        self.name = name
        self.store = SimStore(ctx.settings.resolved_home / "simulators" / name)

    def deposit(self, key: str, filename: str, data: bytes, metadata: dict[str, str]) -> str:
        return self.store.receive(key, data, {"name": filename, "metadata": metadata}).remote_id


def service(ctx: AppContext, name: str) -> DepositService:
    """``digiposte``, ``maileva`` or ``archive`` (only simulators exist)."""
    if name not in ("digiposte", "maileva", "archive"):
        raise ValueError(name)
    return SimulatedService(ctx, name)
