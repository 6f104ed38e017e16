"""Typed results of :class:`parafe.client.ParafeClient` (dataclasses, built from the REST answers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RETURN_KINDS = ("ack", "pes-retour", "chorus", "signed")  # what GET …/{kind}/remaining accepts


@dataclass(frozen=True)
class Person:
    username: str
    full_name: str


@dataclass(frozen=True)
class Circuit:
    id: str
    name: str
    type: str
    signers: tuple[Person, ...] = ()
    validators: tuple[Person, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Circuit:
        def people(key: str) -> tuple[Person, ...]:
            return tuple(Person(p.get("username", ""), p.get("fullName", "")) for p in data.get(key) or [])
        return cls(str(data["id"]), str(data.get("name", "")), str(data.get("type", "")), people("signers"),
                   people("validators"))


@dataclass(frozen=True)
class HistoryEntry:
    state: str | None  # the history label (« Signé », « Classé »…), None for an entry without state
    actor: str
    date: datetime

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HistoryEntry:
        raw = str(data.get("date", "")).replace("Z", "+00:00")
        return cls(data.get("stateName"), str(data.get("userFullname", "")), datetime.fromisoformat(raw))


@dataclass(frozen=True)
class DocumentStatus:
    id: int
    state: str | None  # the current state's label
    history: tuple[HistoryEntry, ...] = field(default_factory=tuple)

    def reached(self, labels: frozenset[str]) -> bool:
        return any(entry.state in labels for entry in self.history)
