"""The application context: settings, database, blob store and certificate verifier, built once per process.

Services receive it explicitly; connectors get it from the ASGI app state. Nothing here is per-request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

from parafe.config import Settings, get_settings
from parafe.db.session import Database
from parafe.storage import open_store
from parafe.storage.base import BlobStore


class ComplianceRecorder(Protocol):
    """What the context knows of the compliance recorder it holds: the recorder itself is a service
    (:class:`parafe.services.compliance.recorder.Recorder`, the only implementation), above this module."""

    def flush(self) -> int: ...


@dataclass
class AppContext:
    settings: Settings
    db: Database
    store: BlobStore
    # The process's compliance recorder, made on first use (parafe.services.compliance.recorder.recorder).
    compliance_recorder: ComplianceRecorder | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> AppContext:
        settings = settings or get_settings()
        home = settings.resolved_home
        home.mkdir(parents=True, exist_ok=True)
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings=settings, db=Database(settings.db_url), store=open_store(settings))

    @cached_property
    def tmp_dir(self) -> Path:
        return self.settings.tmp_dir

    @cached_property
    def label_set(self) -> str:
        return self.settings.history_labels

    def close(self) -> None:
        self.db.dispose()
