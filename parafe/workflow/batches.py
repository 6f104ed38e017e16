"""Outbox rows of one kind run together (issue 17): the batch handlers of :mod:`parafe.workflow.handlers`.

A worker claims several due rows at once (:func:`parafe.jobs.outbox.execute_many`); for the kinds on the
path of every document this module runs them as one batch instead of one by one:

- ``sign.server``: the documents read in one query, the PDFs signed as :class:`~parafe.signing.bulk.BulkPdfSigner`
  batches (PES and office documents one by one, as before), the signed files stored behind one durability
  barrier (:meth:`~parafe.storage.base.BlobStore.put_files`), chunk by chunk of at most ``SIGN_CHUNK_BYTES``
  (the memory a batch holds is bounded whatever its row count), then ONE closing transaction for the batch;
- ``workflow.start``: one transaction starts every document of the batch.

The closing transaction does what each row's own would (re-read the row and the document under lock, check the
document is still where the job expects it, record, advance, close the row): a row executed twice changes the
database once, and a worker killed before the commit leaves every row of the batch to be claimed again. A
document that fails to sign is reported to the outbox (retry, then give up) without holding back the others;
an error in the closing transaction makes the outbox run the rows one by one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.config import fault_pause_for
from parafe.context import AppContext
from parafe.db.models import Circuit, Document, OutboxItem
from parafe.domain.circuits import StepKind
from parafe.domain.states import ACTOR_AUTOMATIC, State
from parafe.jobs import outbox
from parafe.workflow import engine, signatures
from parafe.workflow.engine import record, workflow_tx

Apply = Callable[[Session, OutboxItem, Document | None], None]


def finish_many(ctx: AppContext, items: Iterable[OutboxItem], apply: Apply) -> None:
    """The closing transaction of a batch: for each row still pending, ``apply`` to its locked document, then
    close the row (documents locked in id order: two workers' batches never wait for each other in a cycle)."""
    ordered = sorted(items, key=lambda i: (i.document_id or 0, i.id))
    if not ordered:
        return
    with workflow_tx(ctx) as session:
        # the rows, then the documents, each set locked with one statement in id order (as _finish locks the
        # row, then the document): a batch costs two round trips of locks instead of two per row
        pending = {row.id: row for row in session.scalars(
            select(OutboxItem).where(OutboxItem.id.in_([i.id for i in ordered]), OutboxItem.done_at.is_(None))
            .order_by(OutboxItem.id).with_for_update())}
        wanted = sorted({i.document_id for i in ordered if i.id in pending and i.document_id is not None})
        documents = {doc.id: doc for doc in session.scalars(
            select(Document).where(Document.id.in_(wanted), Document.deleted_at.is_(None))
            .order_by(Document.id).with_for_update())} if wanted else {}
        for item in ordered:
            row = pending.get(item.id)
            if row is None:
                continue
            apply(session, item, documents.get(item.document_id) if item.document_id is not None else None)
            outbox.close(row)


def load_many(ctx: AppContext, document_ids: Iterable[int | None]) -> dict[int, Document]:
    wanted = sorted({i for i in document_ids if i is not None})
    if not wanted:
        return {}
    with ctx.db.read() as session:
        documents = list(session.scalars(select(Document).where(Document.id.in_(wanted))))
        for document in documents:
            session.expunge(document)
    return {document.id: document for document in documents}


def pause_many(ctx: AppContext, kind: str, document_ids: Iterable[int]) -> None:
    """Crash-test hook (``PARAFE_FAULT_PAUSE``) of a batch: mark each "effect done, commit pending", then wait."""
    seconds = fault_pause_for(kind)
    if seconds <= 0:
        return
    marker_dir = ctx.settings.resolved_home / "faults"
    marker_dir.mkdir(parents=True, exist_ok=True)
    for document_id in document_ids:
        (marker_dir / f"{kind}-{document_id}").write_text(str(time.time()))
    time.sleep(seconds)


def store_many(ctx: AppContext, blobs: list[bytes]) -> list[str]:
    """Store several files behind one durability barrier; their SHA-256 in order."""
    with contextlib.ExitStack() as stack:
        spooled: list[tuple[Path, str | None]] = []
        for data in blobs:
            spool = stack.enter_context(ctx.store.spool())
            spool.write(data)
            path, sha256, _size = spool.finish(fsync=False)  # put_files makes them durable
            spooled.append((path, sha256))
        return [ref.sha256 for ref in ctx.store.put_files(spooled)]


def current_bytes(ctx: AppContext, document: Document) -> bytes:
    """The document's bytes as the next step sees them (the signed version once there is one)."""
    return ctx.store.read_bytes(document.signed_blob_sha256 or document.blob_sha256)


def circuit_settings(ctx: AppContext, document: Document) -> dict[str, Any]:
    with ctx.db.read() as session:
        circuit = session.get(Circuit, document.circuit_id)
        return dict(circuit.settings or {}) if circuit is not None else {}


def _position(item: OutboxItem) -> int | None:
    value = item.payload.get("position")
    return int(value) if value is not None else None


# --- sign.server ------------------------------------------------------------------------------------------------

def sign_server_many(ctx: AppContext, items: list[OutboxItem]) -> list[tuple[OutboxItem, Exception]]:
    """The server signature step of several documents (see the module docstring)."""
    documents = load_many(ctx, (item.document_id for item in items))
    due: list[tuple[OutboxItem, Document, int | None]] = []
    for item in items:
        document = documents.get(item.document_id or 0)
        position = _position(item)
        if document is not None and document.current_step == position and document.state == State.SENT_FOR_SIGN.value:
            due.append((item, document, position))
    failed: list[tuple[OutboxItem, Exception]] = []
    stored: dict[int, tuple[str | None, str | None]] = {}  # item id -> (signed document, detached signature)
    for chunk in _chunks_by_size(due):  # the bytes of one chunk at a time in memory, signed then stored
        chunk_stored, chunk_failed = _sign_and_store(ctx, chunk)
        stored.update(chunk_stored)
        failed += chunk_failed
    pause_many(ctx, "sign.server", [document.id for item, document, _p in due if item.id in stored])
    failed_ids = {item.id for item, _exc in failed}

    def apply_or_skip(session: Session, item: OutboxItem, doc: Document | None) -> None:
        if item.id in stored:
            apply_server_signature(ctx, session, doc, _position(item), *stored[item.id])
        # else: the document moved on (or was deleted) before the job ran: the row closes with nothing to do

    finish_many(ctx, [item for item in items if item.id not in failed_ids], apply_or_skip)
    return failed


def sign_not_pdf(ctx: AppContext, document: Document, data: bytes) -> tuple[bytes | None, bytes | None]:
    """The server signature of a PES (enveloped: the signed file) or of an office document (a detached XAdES
    signature): (signed document, detached signature)."""
    if document.kind == "pes":
        mode = str(circuit_settings(ctx, document).get("pes_signature") or "per_bordereau")
        return signatures.sign_pes(data, signatures.server_signer(ctx), mode=mode), None
    return None, signatures.sign_xades_detached(data, signatures.server_signer(ctx), document.name)


def apply_server_signature(ctx: AppContext, session: Session, doc: Document | None, position: int | None,
                           signed_sha: str | None, signature_sha: str | None) -> None:
    """The closing transaction's part of the server signature step, when the document is still there: the
    stored signed file or detached signature, « Signé », the next step."""
    if doc is None or not engine.at_step(session, doc, position, StepKind.SERVER_SIGNATURE):
        return
    if doc.state != State.SENT_FOR_SIGN.value:
        return
    if signed_sha:
        doc.signed_blob_sha256 = signed_sha
    if signature_sha:
        doc.signature_blob_sha256 = signature_sha
    record(session, doc, State.SIGNED, actor=ACTOR_AUTOMATIC)
    engine.advance(ctx, session, doc)


SIGN_CHUNK_BYTES = 64 * 1024 * 1024  # documents signed and stored together by a batch, at most (their sizes)


def _chunks_by_size(due: list[tuple[OutboxItem, Document, int | None]],
                    ) -> list[list[tuple[OutboxItem, Document, int | None]]]:
    """The batch's documents in chunks of at most :data:`SIGN_CHUNK_BYTES` (a document larger than that alone):
    a claimed batch holds a bounded number of bytes in memory whatever its row count."""
    chunks: list[list[tuple[OutboxItem, Document, int | None]]] = []
    size = 0
    for entry in due:
        if not chunks or (size + entry[1].size > SIGN_CHUNK_BYTES and chunks[-1]):
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += entry[1].size
    return chunks


def _sign_and_store(ctx: AppContext, due: list[tuple[OutboxItem, Document, int | None]],
                    ) -> tuple[dict[int, tuple[str | None, str | None]], list[tuple[OutboxItem, Exception]]]:
    """Sign a chunk of the batch (the PDFs as bulk batches) and store the results behind one durability
    barrier: item id -> (signed document, detached signature) SHA-256, and the items that failed."""
    failed: list[tuple[OutboxItem, Exception]] = []
    results: dict[int, tuple[bytes | None, bytes | None]] = {}  # item id -> (signed document, detached signature)
    pdfs = [(item, document, position) for item, document, position in due if document.kind == "pdf"]
    if pdfs:
        signed = signatures.server_sign_pdfs(
            ctx, [(current_bytes(ctx, document), signatures.deposit_pictogram(document.extra, position))
                  for _item, document, position in pdfs], reason="Signature serveur")
        for (item, _document, _pos), outcome in zip(pdfs, signed, strict=True):
            if isinstance(outcome, Exception):
                failed.append((item, outcome))
            else:
                results[item.id] = (outcome, None)
    for item, document, _pos in due:
        if document.kind == "pdf":
            continue
        try:
            results[item.id] = sign_not_pdf(ctx, document, current_bytes(ctx, document))
        except Exception as exc:
            failed.append((item, exc))
    signed_ids = list(results)
    shas = store_many(ctx, [blob for item_id in signed_ids for blob in results[item_id] if blob is not None])
    stored: dict[int, tuple[str | None, str | None]] = {}
    cursor = iter(shas)
    for item_id in signed_ids:
        signed_blob, signature_blob = results[item_id]
        stored[item_id] = (next(cursor) if signed_blob is not None else None,
                           next(cursor) if signature_blob is not None else None)
    return stored, failed


# --- workflow.start ---------------------------------------------------------------------------------------------

def start_many(ctx: AppContext, items: list[OutboxItem]) -> list[tuple[OutboxItem, Exception]]:
    """Hand several deposited documents to their first step, in one transaction."""
    def apply(session: Session, item: OutboxItem, document: Document | None) -> None:
        if document is not None:
            engine.start(ctx, session, document)

    finish_many(ctx, items, apply)
    return []
