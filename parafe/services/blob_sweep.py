"""The orphan-blob sweeper (docs/storage.md, "Orphan sweeping"): deletes the blobs that no row references any
more, once they are older than a grace period.

Orphans come from deposits refused after their blobs were written, crashes before a commit, signed versions
replaced by the next signature, expired remote-signing sessions (15 minutes) and purged OSS documents (whose
rows drop their references when ``dateToPurge`` comes: the sweeper is what actually deletes their files).

Safety: the references are read first, then the store is listed; a blob is deleted only if it is unreferenced
**and** its modification time is older than ``grace`` (24 h by default) before the sweep started. A blob is
written before the transaction that references it commits, and a duplicate ``put`` refreshes its modification
time (``parafe.storage.base``), so a blob a new row is about to reference is always inside the grace period.
Besides the blob columns, every 64-hex string inside the documents' ``extra`` JSON and the pending outbox
payloads counts as a reference (the Helios acknowledgement is kept there too): the sweeper errs on keeping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import Annex, Document, OutboxItem, ReturnItem, WebdavDeposit, utcnow
from parafe.services.oss import purge as oss_purge

DEFAULT_GRACE = timedelta(hours=24)
MIN_GRACE = timedelta(hours=1)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BATCH = 5_000


@dataclass
class SweepReport:
    blobs: int = 0  # blobs listed in the store
    referenced: int = 0  # of which still referenced by a row
    recent: int = 0  # unreferenced but inside the grace period (kept)
    deleted: int = 0  # unreferenced and old: deleted (or, with dry_run, would be)
    freed_bytes: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"blobs": self.blobs, "referenced": self.referenced, "recent": self.recent,
                "deleted": self.deleted, "freed_bytes": self.freed_bytes, "dry_run": self.dry_run}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if len(value) == 64 and _SHA256.match(value):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def referenced_blobs(session: Session) -> set[str]:
    """Every blob a row references: the blob columns, plus sha256 values in JSON that may point at blobs."""
    refs: set[str] = set()
    for stmt in (
        select(Document.blob_sha256, Document.signed_blob_sha256, Document.signature_blob_sha256),
        select(Annex.blob_sha256),
        select(ReturnItem.blob_sha256),
        select(WebdavDeposit.sha256),
    ):
        for row in session.execute(stmt.execution_options(yield_per=_BATCH)):
            refs.update(value for value in row if value)
    for (extra,) in session.execute(select(Document.extra).execution_options(yield_per=_BATCH)):
        refs.update(_strings(extra))
    for (payload,) in session.execute(select(OutboxItem.payload).where(OutboxItem.done_at.is_(None))):
        refs.update(_strings(payload))
    refs |= oss_purge.blob_references(session)
    return refs


def sweep_orphan_blobs(
    ctx: AppContext, *, grace: timedelta = DEFAULT_GRACE, dry_run: bool = False, now: datetime | None = None,
    progress: Callable[[SweepReport], None] | None = None,
) -> SweepReport:
    """Delete (or, with ``dry_run``, count) the unreferenced blobs older than ``grace``; ``progress`` is called
    every 10,000 listed blobs."""
    if grace < MIN_GRACE:
        raise ValueError("le délai de grâce doit être d'au moins une heure")
    started = now or utcnow()
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    limit = started - grace
    with ctx.db.read() as session:
        refs = referenced_blobs(session)
    report = SweepReport(dry_run=dry_run)
    for info in ctx.store.iter_blobs():
        report.blobs += 1
        if info.sha256 in refs:
            report.referenced += 1
        else:
            modified = info.modified if info.modified.tzinfo else info.modified.replace(tzinfo=UTC)
            if modified >= limit:
                report.recent += 1
            else:
                if not dry_run:
                    ctx.store.delete(info.sha256)
                report.deleted += 1
                report.freed_bytes += info.size
        if progress is not None and report.blobs % 10_000 == 0:
            progress(report)
    return report
