"""Helpers of the workflow tests: deposits through the deposit service, and running the outbox.

``run_jobs`` executes due outbox rows in the test's thread with the same code a worker runs
(:func:`parafe.jobs.outbox.execute`); ``PARAFE_QUEUE=memory`` keeps rows out of any queue file so that nothing
else claims them. The worker-process tests (``test_worker*.py``, ``test_crash.py``) use the real queue.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import Document, HistoryEntry
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import AGENT
from parafe.services.documents.deposit import DepositRequest, Upload, deposit


@pytest.fixture(autouse=True)
def wf_env(home: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workflow settings of the tests (after ``home``, which clears every ``PARAFE_*`` variable)."""
    monkeypatch.setenv("PARAFE_QUEUE", "memory")
    monkeypatch.setenv("PARAFE_HELIOS_SIM_DELAY", "0.3")
    monkeypatch.setenv("PARAFE_HELIOS_POLL_SECONDS", "0.2")
    monkeypatch.setenv("PARAFE_JOB_BACKOFF_SECONDS", "0.2")


def make_upload(tmp_path: Path, name: str, data: bytes) -> Upload:
    path = tmp_path / f"up-{hashlib.sha256(data + name.encode()).hexdigest()[:16]}"
    path.write_bytes(data)
    return Upload(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), filename=name)


def deposit_file(ctx: Any, tmp_path: Path, name: str, data: bytes, *, circuit: str, user: str = AGENT,
                 siren: str = "123456789", **kw: Any) -> int:
    req = DepositRequest(siren=siren, circuit=circuit, upload=make_upload(tmp_path, name, data), **kw)
    return deposit(ctx, principal_for_email(ctx, user), req).document_id


def run_jobs(ctx: Any, until: Callable[[], bool] | None = None, timeout: float = 30.0) -> None:
    """Execute due outbox rows until ``until()`` holds (or, without it, until nothing is pending)."""
    from parafe.jobs import outbox

    deadline = time.monotonic() + timeout
    while True:
        ran = outbox.run_due(ctx)
        if until is not None and until():
            return
        if until is None and ran == 0 and outbox.next_due(ctx) is None:
            return
        if time.monotonic() > deadline:
            raise AssertionError("jobs did not reach the expected point in time")
        if ran == 0:
            time.sleep(0.05)


def states(ctx: Any, document_id: int) -> list[str | None]:
    with ctx.db.read() as s:
        return list(s.scalars(select(HistoryEntry.state).where(HistoryEntry.document_id == document_id)
                              .order_by(HistoryEntry.id)))


def history(ctx: Any, document_id: int) -> list[HistoryEntry]:
    with ctx.db.read() as s:
        rows = list(s.scalars(select(HistoryEntry).where(HistoryEntry.document_id == document_id)
                              .order_by(HistoryEntry.id)))
        for row in rows:
            s.expunge(row)
        return rows


def document(ctx: Any, document_id: int) -> Document:
    with ctx.db.read() as s:
        doc = s.get(Document, document_id)
        assert doc is not None
        s.expunge(doc)
        return doc


def state_of(ctx: Any, document_id: int) -> str:
    return document(ctx, document_id).state
