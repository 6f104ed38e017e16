"""Definitive deletion of a document (delete, daily purge): a tombstone in the database, the bytes erased.

Spec §2.5.8: « Cette méthode permet de supprimer un document ET son contexte (métadonnées, historique, …) » and
« la suppression est irréversible ». :func:`bury` runs inside the caller's transaction:

1. it collects every blob the document references — its content, signed version, detached signature, every
   earlier version (``document_blob_versions``), annexes, returns, WebDAV deposit, metadata or report blobs of
   any table pointing at the document (every ``*sha256`` column of a row whose foreign key names the document),
   and the 64-hex strings of its ``extra`` JSON;
2. it writes a :class:`~parafe.db.models.DocumentTombstone` (id, subscriber, circuit, label, name, NomFic, who
   deleted, when, why) with those blobs, revokes the recipients' download links;
3. it removes the document row and every row pointing at it (or nulls the pointer where the foreign key says
   ``SET NULL``): no connector can find the id any more, they answer as for an unknown id, and no row can point
   at an erased blob. The NomFic stays reserved (``pes_nomfic`` has no foreign key);
4. it queues ``document.erase``, which erases the blobs right after the commit (seconds).

:func:`erase_pending` (the ``document.erase`` job) erases the blobs of every tombstone not erased yet, except a
blob another row still references (content addressing: the same bytes deposited twice are one blob) and a blob
(re)written after the deletion (a concurrent deposit of the same bytes, whose ``put`` refreshes the blob's
modification time, is about to reference it). Idempotent: erasing an absent blob is a no-op.

Known limit: a deposit of the very same bytes that wrote its blob *before* the deletion committed and commits
its own row *after* the erasure checked the references (a deposit lasting longer than the time between the
delete and its job) would point at an erased blob. The orphan sweeper's grace period does not apply here: the
spec wants the bytes gone now.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Table, Text, and_, cast, delete, or_, select, update
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import (
    Base,
    Circuit,
    Document,
    DocumentBlobVersion,
    DocumentTombstone,
    DownloadLink,
    Label,
    OutboxItem,
    utcnow,
)
from parafe.jobs import outbox
from parafe.jobs.outbox import handler
from parafe.jobs.runtime import kick
from parafe.storage.base import BlobNotFound

log = logging.getLogger(__name__)

ERASE_KIND = "document.erase"
LEGACY_DELETE_KIND = "document.deleted"  # the soft delete's job of earlier versions (migration 0008 re-queues it)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DOCUMENT_COLUMNS = ("blob_sha256", "signed_blob_sha256", "signature_blob_sha256")
# tables whose sha256 values are not references to live content
_NOT_REFERENCES = frozenset({"document_tombstones", "document_blob_versions"})
_BATCH = 200


def _hex_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if len(value) == 64 and _SHA256.match(value):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _hex_strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _hex_strings(item)


def _blob_columns(table: Table) -> list[Column[Any]]:
    return [c for c in table.columns if c.name.endswith("sha256")]


def _document_children() -> list[tuple[Table, Column[Any], str | None]]:
    """(table, column, ondelete) of every foreign key to ``documents.id`` (other helpers' tables included)."""
    found: list[tuple[Table, Column[Any], str | None]] = []
    documents = Document.__table__
    for table in Base.metadata.sorted_tables:
        if table is documents:
            continue
        for fk in table.foreign_keys:
            if fk.column.table is documents and fk.parent.table is table:
                found.append((table, fk.parent, (fk.ondelete or "").upper() or None))
    return found


def document_blobs(session: Session, document: Document) -> set[str]:
    """Every blob ``document`` references or referenced (see the module docstring)."""
    blobs = {value for value in (getattr(document, c) for c in _DOCUMENT_COLUMNS) if value}
    blobs.update(_hex_strings(document.extra or {}))
    blobs.update(session.scalars(select(DocumentBlobVersion.blob).where(
        DocumentBlobVersion.document_id == document.id)))
    for table, column, _ in _document_children():
        if table.name in _NOT_REFERENCES:
            continue
        for blob_column in _blob_columns(table):
            blobs.update(v for v in session.scalars(select(blob_column).where(column == document.id)) if v)
    return {b for b in blobs if _SHA256.match(b)}


def bury(session: Session, document: Document, *, reason: str, by_user_id: int | None, by_name: str) -> int:
    """Replace ``document`` by its tombstone in the current transaction and queue the erasure of its blobs
    (see the module docstring); returns the outbox row id. ``reason``: ``delete`` or ``purge``."""
    doc_id = document.id
    now = utcnow()
    circuit_key = session.scalar(select(Circuit.key).where(Circuit.id == document.circuit_id)) or ""
    label = session.scalar(select(Label.name).where(Label.id == document.label_id)) or ""
    blobs = sorted(document_blobs(session, document))
    session.add(DocumentTombstone(
        id=doc_id, subscriber_id=document.subscriber_id, circuit_id=document.circuit_id, circuit_key=circuit_key,
        label=label, name=document.name, nom_fic=document.nom_fic, reason=reason, deleted_by_id=by_user_id,
        deleted_by_name=by_name[:255], deposited_at=document.created_at, deleted_at=now, blobs=blobs,
        erased_blobs=0))
    session.execute(update(DownloadLink).where(DownloadLink.document_id == doc_id, DownloadLink.revoked_at.is_(None))
                    .values(revoked_at=now, revoked_reason=reason).execution_options(synchronize_session=False))
    session.flush()
    session.expunge(document)
    for table, column, ondelete in _document_children():
        if ondelete == "SET NULL":
            session.execute(update(table).where(column == doc_id).values({column.name: None}))
        else:
            session.execute(delete(table).where(column == doc_id))
    session.execute(delete(Document).where(Document.id == doc_id).execution_options(synchronize_session=False))
    item = outbox.add(session, ERASE_KIND, None, {"tombstone": doc_id})
    return item.id


def referenced(session: Session, blobs: Iterable[str]) -> set[str]:
    """Which of ``blobs`` a row still references: any ``*sha256`` column of any table (documents, annexes,
    returns, WebDAV deposits, OSS documents, other helpers' tables), the documents' ``extra`` JSON and the
    pending outbox payloads (the orphan sweeper's rule)."""
    wanted = sorted(set(blobs))
    found: set[str] = set()
    if not wanted:
        return found
    for table in Base.metadata.sorted_tables:
        if table.name in _NOT_REFERENCES:
            continue
        for column in _blob_columns(table):
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                found.update(session.scalars(select(column).where(column.in_(chunk)).distinct()))
    rest = [b for b in wanted if b not in found]
    for start in range(0, len(rest), 50):
        chunk = rest[start:start + 50]
        for json_column, extra_cond in ((Document.extra, None), (OutboxItem.payload, OutboxItem.done_at.is_(None))):
            stmt = select(json_column).where(or_(*(cast(json_column, Text).like(f"%{b}%") for b in chunk)))
            if extra_cond is not None:
                stmt = stmt.where(extra_cond)
            for value in session.scalars(stmt):
                found.update(set(_hex_strings(value)) & set(chunk))
    return found


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def erase_blobs(ctx: AppContext, blobs: Iterable[str], since: datetime, *, label: str = "") -> int:
    """Delete from the store those of ``blobs`` no row references any more and not (re)written after ``since``
    (the moment their last reference went); returns how many were deleted."""
    wanted = {b for b in blobs if b and _SHA256.match(b)}
    if not wanted:
        return 0
    with ctx.db.read() as session:
        kept = referenced(session, wanted)
    count = 0
    for blob in sorted(wanted - kept):
        try:
            info = ctx.store.stat(blob)
        except BlobNotFound:
            continue
        if _aware(info.modified) > _aware(since):
            log.info("blob %s %s rewritten since its last reference went: kept", blob[:12], label)
            continue
        ctx.store.delete(blob)
        count += 1
    return count


def erase_pending(ctx: AppContext, limit: int = _BATCH) -> int:
    """Erase the blobs of the tombstones not erased yet (oldest first, at most ``limit`` tombstones); returns
    how many tombstones were done (0: none was pending)."""
    with ctx.db.read() as session:
        pending = [(t.id, list(t.blobs or []), t.deleted_at) for t in session.scalars(
            select(DocumentTombstone).where(DocumentTombstone.erased_at.is_(None))
            .order_by(DocumentTombstone.deleted_at).limit(limit))]
    if not pending:
        return 0
    erased = {tombstone_id: erase_blobs(ctx, blobs, deleted_at, label=f"of document {tombstone_id}")
              for tombstone_id, blobs, deleted_at in pending}
    with ctx.db.write() as session:
        now = utcnow()
        for tombstone_id, count in erased.items():
            session.execute(update(DocumentTombstone).where(DocumentTombstone.id == tombstone_id).values(
                erased_at=now, erased_blobs=DocumentTombstone.erased_blobs + count, blobs=[]))
    return len(erased)


def catch_up(ctx: AppContext) -> int:
    """Erase what earlier ``document.erase`` jobs left (a store down past their retries); the daily purge calls
    it. Returns how many tombstones were done; a failure is logged, not raised."""
    done = 0
    try:
        while count := erase_pending(ctx):
            done += count
    except Exception:
        log.exception("erasure catch-up failed; the next purge tries again")
    return done


# --- the daily purge (spec §4.5: WebDAV in/ and out/ after 15 days) -------------------------------------------

PURGE_ACTOR = "Purge automatique"


def _awaited_return() -> Any:
    """A return still in a remaining list of the web services: not downloaded, not deleted from WebDAV (D11)."""
    from parafe.db.models import ReturnItem

    return (ReturnItem.downloaded_at.is_(None), ReturnItem.webdav_deleted_at.is_(None))


def purge_webdav_documents(ctx: AppContext, cutoff: datetime, finished: Iterable[str]) -> int:
    """Documents deposited through WebDAV whose circuit is over (``finished`` states) and unchanged since
    ``cutoff``: their returns leave ``out/`` (spec §4.5) and, nothing else keeping them, they are buried like a
    delete (tombstone ``purge``, bytes erased). A document whose acknowledgement is still in the web services'
    remaining list (neither downloaded nor deleted from WebDAV, DECISIONS D11) is kept until it leaves it.
    Returns how many."""
    from parafe.db.models import ReturnItem, WebdavDeposit

    states = sorted(set(finished))
    awaited = select(ReturnItem.document_id).where(ReturnItem.document_id.is_not(None), *_awaited_return())
    count = 0
    while True:
        with ctx.db.write() as session:
            documents = list(session.scalars(
                select(Document).where(Document.id.in_(select(WebdavDeposit.document_id)),
                                       Document.state.in_(states), Document.updated_at < cutoff,
                                       Document.deleted_at.is_(None), Document.id.not_in(awaited))
                .order_by(Document.id).limit(_BATCH).with_for_update()))
            for document in documents:
                bury(session, document, reason="purge", by_user_id=None, by_name=PURGE_ACTOR)
        count += len(documents)
        if len(documents) < _BATCH:
            break
    if count:
        while erase_pending(ctx):
            pass
    return count


def purge_returns(ctx: AppContext, cutoff: datetime) -> int:
    """PES_Retour and Chorus flows (returns of the subscriber, not of a document) older than ``cutoff`` — out of
    ``out/`` (spec §4.5) — and fetched (downloaded through the web services, or deleted from WebDAV): removed, their
    bytes erased. A flow nobody fetched stays in its remaining list (DECISIONS D11). Returns how many."""
    from parafe.db.models import ReturnItem

    now = utcnow()
    with ctx.db.write() as session:
        rows = session.execute(select(ReturnItem.id, ReturnItem.blob_sha256).where(
            ReturnItem.document_id.is_(None), ReturnItem.created_at < cutoff,
            ~and_(*_awaited_return()))).all()
        if rows:
            session.execute(delete(ReturnItem).where(ReturnItem.id.in_([r.id for r in rows])))
    erase_blobs(ctx, {r.blob_sha256 for r in rows}, now, label="of a purged return")
    return len(rows)


@handler(ERASE_KIND)
def _erase(ctx: AppContext, item: OutboxItem) -> None:
    while erase_pending(ctx) and _has_pending(ctx):
        pass
    with ctx.db.write() as session:
        row = outbox.lock_pending(session, item.id)
        if row is not None:
            outbox.close(row)


def _has_pending(ctx: AppContext) -> bool:
    with ctx.db.read() as session:
        return session.scalar(select(DocumentTombstone.id).where(DocumentTombstone.erased_at.is_(None)).limit(1)) \
            is not None


@handler(LEGACY_DELETE_KIND)
def _legacy_deleted(ctx: AppContext, item: OutboxItem) -> None:
    """A soft delete of an earlier version (``deleted_at`` set, row kept): bury it now."""
    from parafe.db.models import User

    with ctx.db.write() as session:
        row = outbox.lock_pending(session, item.id)
        if row is None:
            return
        document_id = row.document_id
        outbox.close(row)
        session.flush()
        document = session.get(Document, document_id) if document_id is not None else None
        if document is not None and document.deleted_at is not None:
            by = item.payload.get("by")
            user = session.get(User, int(by)) if by else None
            bury(session, document, reason="delete", by_user_id=user.id if user else None,
                 by_name=user.full_name if user else "")
        new_items = outbox.new_items(session)
    kick(ctx, new_items)
