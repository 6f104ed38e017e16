"""The ``out/`` folders of the WebDAV drop zone (spec §4, DECISIONS D6, D11): the returns of the documents
deposited in the same ``in/`` folder — ``<name>`` (signed), ``ACQUIT_<name>`` (Helios), ``<name>.refus.xml``
(refusal envelope) — and the subscriber's flows (``PES_Retour``, ``chorus-pivot``).

Every folder listing is ONE query whatever the number of entries (plus a blob size lookup, cached per process
because blobs are immutable). An entry is listed for :data:`~parafe.services.webdav.folders.OUT_TTL` (15 days)
after it appeared, a rule evaluated on every request; :func:`purge_webdav` additionally records the purge of
signed files and refusal envelopes (whose date is the document's last change) so that a later change cannot bring
them back (spec §4.5).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

from sqlalchemy import (
    ColumnElement,
    String,
    Text,
    and_,
    case,
    cast,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import (
    Document,
    HistoryEntry,
    Label,
    ReturnItem,
    WebdavDeposit,
    utcnow,
)
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import State, label
from parafe.services.documents.lifecycle import REFUSAL_STATES
from parafe.services.webdav.folders import (
    ACK,
    ACK_PREFIX,
    FINISHED_STATES,
    FLOW,
    FLOW_KINDS,
    OUT_TTL,
    RECEIPT,
    REFUSAL,
    REFUSAL_SUFFIX,
    SIGNED,
    AnySelect,
    CircuitView,
    FileEntry,
    FolderEntry,
    nfc,
)
from parafe.storage.base import BlobNotFound

log = logging.getLogger(__name__)

# The order of the kinds breaks name ties (the first keeps the plain name).
_KIND_ORDER = {SIGNED: 0, ACK: 1, REFUSAL: 2, FLOW: 3, RECEIPT: 4}


@dataclass(frozen=True)
class OutFolder:
    """A folder of out/: ``out/<circuit>[/<label>]`` (``circuit`` set) or a flow folder (``flow`` set)."""

    subscriber_id: int
    circuit: CircuitView | None = None
    label_folder: str = ""
    flow: str | None = None


def _refusal_subquery(column: Any) -> ColumnElement[Any]:
    h = HistoryEntry
    return (select(column).where(h.document_id == Document.id, h.state.in_(REFUSAL_STATES))
            .order_by(h.id.desc()).limit(1).scalar_subquery())


def _signed_listed(cutoff: datetime) -> tuple[ColumnElement[bool], ...]:
    w, d = WebdavDeposit, Document
    return (d.signed_blob_sha256.is_not(None), d.state.in_(FINISHED_STATES), w.signed_hidden_at.is_(None),
            d.updated_at >= cutoff)


def _refusal_listed(cutoff: datetime) -> tuple[ColumnElement[bool], ...]:
    w, d = WebdavDeposit, Document
    return d.state.in_(REFUSAL_STATES), w.refusal_hidden_at.is_(None), d.updated_at >= cutoff


def _ack_listed(cutoff: datetime) -> tuple[ColumnElement[bool], ...]:
    r = ReturnItem
    return r.kind == "ack", r.webdav_deleted_at.is_(None), r.created_at >= cutoff


def _out_statement(folder: OutFolder, cutoff: datetime, name: str | None = None) -> AnySelect:
    """ONE query for every entry of an out/ folder (or only those whose plain name is ``name``).

    Columns: kind, ref, name, blob, modified, state, message, actor, refused_at, comment.
    """
    if folder.flow is not None:
        r = ReturnItem
        flow_stmt = (select(literal_column("'flow'", String).label("kind"), r.id.label("ref"), r.name.label("name"),
                            r.blob_sha256.label("blob"), r.created_at.label("modified"),
                            cast(null(), String).label("state"), cast(null(), Text).label("message"),
                            cast(null(), String).label("actor"), cast(null(), r.created_at.type).label("refused_at"),
                            cast(null(), Text).label("comment"))
                     .where(r.subscriber_id == folder.subscriber_id, r.kind == FLOW_KINDS[folder.flow],
                            r.webdav_deleted_at.is_(None), r.created_at >= cutoff))
        if name is not None:
            flow_stmt = flow_stmt.where(r.name == name)
        return flow_stmt
    assert folder.circuit is not None
    w, d, r = WebdavDeposit, Document, ReturnItem
    where = (w.circuit_id == folder.circuit.id, w.label_folder == folder.label_folder, d.deleted_at.is_(None))
    refused = d.state.in_(REFUSAL_STATES)
    # signed-and-finished and refused documents in one pass (a document is one or the other); the history
    # look-ups of the refusal envelope run for refused rows only (CASE short-circuits)
    docs = (select(case((refused, literal_column("'refusal'", String)), else_=literal_column("'signed'", String))
                   .label("kind"),
                   d.id.label("ref"), d.name.label("name"),
                   case((refused, cast(null(), String)), else_=d.signed_blob_sha256).label("blob"),
                   d.updated_at.label("modified"), d.state.label("state"),
                   case((refused, d.refusal_message), else_=cast(null(), Text)).label("message"),
                   case((refused, _refusal_subquery(HistoryEntry.user_fullname)),
                        else_=cast(null(), String)).label("actor"),
                   case((refused, _refusal_subquery(HistoryEntry.created_at)),
                        else_=cast(null(), d.updated_at.type)).label("refused_at"),
                   case((refused, _refusal_subquery(HistoryEntry.comment)), else_=cast(null(), Text)).label("comment"))
            .select_from(w).join(d, d.id == w.document_id)
            .where(*where, or_(and_(*_signed_listed(cutoff)), and_(*_refusal_listed(cutoff)))))
    ack = (select(literal_column("'ack'", String), r.id, d.name, r.blob_sha256, r.created_at, d.state,
                  cast(null(), Text), cast(null(), String), cast(null(), r.created_at.type), cast(null(), Text))
           .select_from(r).join(w, w.document_id == r.document_id).join(d, d.id == r.document_id)
           .where(*where, *_ack_listed(cutoff)))
    if name is None:
        return select(union_all(docs, ack).subquery())
    names = [name] + ([name[: -len(REFUSAL_SUFFIX)]] if name.endswith(REFUSAL_SUFFIX) else [])
    branches: list[AnySelect] = [docs.where(d.name.in_(names))]
    if name.startswith(ACK_PREFIX):
        branches.append(ack.where(d.name == name[len(ACK_PREFIX):]))
    return select(union_all(*branches).subquery())


def _suffixed(name: str, ref: int) -> str:
    """The name of an entry whose plain name is taken by an earlier one: ``a.pdf`` → ``a_<ref>.pdf``."""
    base, dot, ext = name.rpartition(".")
    if dot and base:
        return f"{base}_{ref}.{ext}"
    return f"{name}_{ref}"


_SIZE_CACHE: dict[str, int] = {}
_SIZE_LOCK = threading.Lock()
_SIZE_CACHE_MAX = 200_000


def blob_size(ctx: AppContext, sha256: str) -> int | None:
    """Size of a blob (immutable, so cached per process); None when the blob is missing."""
    size = _SIZE_CACHE.get(sha256)
    if size is not None:
        return size
    path = ctx.store.local_path(sha256)
    try:
        size = path.stat().st_size if path is not None else ctx.store.size(sha256)
    except (FileNotFoundError, BlobNotFound):
        return None
    with _SIZE_LOCK:
        if len(_SIZE_CACHE) >= _SIZE_CACHE_MAX:
            _SIZE_CACHE.clear()
        _SIZE_CACHE[sha256] = size
    return size


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def refusal_envelope(
    document_id: int, name: str, state: str, at: datetime, actor: str | None, message: str | None, label_set: str,
) -> bytes:
    """The response envelope ``<name>.refus.xml`` of a refused or rejected document (D6)."""
    try:
        state_label = label(State(state), label_set)
    except (ValueError, KeyError):
        state_label = state
    fields = (("docId", str(document_id)), ("nomFichier", name), ("etat", state_label), ("date", _iso(at)),
              ("acteur", actor or ""), ("message", message or ""))
    body = "".join(f"  <{tag}>{escape(value)}</{tag}>\n" for tag, value in fields)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<refus>\n{body}</refus>\n'.encode()


def _entries(ctx: AppContext, rows: list[tuple[Any, ...]]) -> list[FileEntry]:
    """The entries of the rows, with their plain names (hot path: 10,000 rows per listing)."""
    out: list[FileEntry] = []
    append = out.append
    sizes = _SIZE_CACHE
    for kind, ref, doc_name, blob, modified, state, message, actor, refused_at, comment in rows:
        if kind == REFUSAL:
            at = refused_at if refused_at is not None else modified
            data = refusal_envelope(ref, doc_name, str(state), at, actor, str(message or comment or ""),
                                    ctx.label_set)
            append(FileEntry(doc_name + REFUSAL_SUFFIX, kind, ref, len(data), hashlib.sha256(data).hexdigest()[:40],
                             at, None, data))
            continue
        size = sizes.get(blob)
        if size is None:
            size = blob_size(ctx, blob)
            if size is None:
                log.warning("webdav: blob %s of %s %s is missing; entry not listed", blob, kind, ref)
                continue
        append(FileEntry(ACK_PREFIX + doc_name if kind == ACK else doc_name, kind, ref, size, blob[:40], modified,
                         blob))
    return out


def _named(entries: list[FileEntry]) -> list[FileEntry]:
    """Give every entry a unique name: the first (by kind, then id) keeps its plain name."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.name] = counts.get(entry.name, 0) + 1
    if all(n == 1 for n in counts.values()):
        return entries
    taken: set[str] = set()
    named: list[FileEntry] = []
    for entry in sorted(entries, key=lambda e: (e.name, _KIND_ORDER[e.kind], e.ref)):
        name = entry.name if entry.name not in taken else _suffixed(entry.name, entry.ref)
        taken.add(name)
        named.append(entry if name == entry.name else entry._replace(name=name))
    return named


def _rows(session: Session, stmt: AnySelect) -> list[tuple[Any, ...]]:
    """Plain rows (Core execution: no ORM result processing for listings)."""
    return [tuple(r) for r in session.connection().execute(stmt)]


def out_entries(ctx: AppContext, folder: OutFolder, now: datetime | None = None) -> list[FileEntry]:
    """The files of an out/ folder (one query)."""
    cutoff = (now or utcnow()) - OUT_TTL
    with ctx.db.read() as session:
        rows = _rows(session, _out_statement(folder, cutoff))
    return _named(_entries(ctx, rows))


def out_entry(ctx: AppContext, folder: OutFolder, name: str, now: datetime | None = None) -> FileEntry | None:
    """The file ``name`` of an out/ folder: a query on its plain name, or the listing for a suffixed name."""
    name = nfc(name)
    cutoff = (now or utcnow()) - OUT_TTL
    with ctx.db.read() as session:
        rows = _rows(session, _out_statement(folder, cutoff, name))
    candidates = [e for e in _entries(ctx, rows) if e.name == name]
    if candidates:
        return min(candidates, key=lambda e: (_KIND_ORDER[e.kind], e.ref))
    if re.search(r"_\d+(\.[^.]*)?$", name):
        for entry in out_entries(ctx, folder, now):
            if entry.name == name:
                return entry
    return None


def out_label_folders(ctx: AppContext, circuit: CircuitView, now: datetime | None = None) -> list[FolderEntry]:
    """The label folders of ``out/<circuit>`` that hold at least one return (empty ones disappear, §4.5)."""
    cutoff = (now or utcnow()) - OUT_TTL
    w, d, r = WebdavDeposit, Document, ReturnItem
    base = (w.circuit_id == circuit.id, w.label_folder != "", d.deleted_at.is_(None))
    docs = (select(w.label_folder.label("folder"), d.updated_at.label("modified"))
            .join(d, d.id == w.document_id)
            .where(*base, or_(and_(*_signed_listed(cutoff)), and_(*_refusal_listed(cutoff)))))
    ack = (select(w.label_folder, r.created_at).select_from(r).join(w, w.document_id == r.document_id)
           .join(d, d.id == r.document_id)
           .where(*base, *_ack_listed(cutoff)))
    union = union_all(docs, ack).subquery()
    stmt = select(union.c.folder, func.max(union.c.modified)).group_by(union.c.folder).order_by(union.c.folder)
    with ctx.db.read() as session:
        return [FolderEntry(str(f), m) for f, m in session.execute(stmt)]


def out_label_folder_exists(ctx: AppContext, circuit: CircuitView, label_folder: str) -> bool:
    """Whether ``out/<circuit>/<label>`` may be listed: it holds returns, or the label exists in the circuit
    (an empty folder a client asks for by name answers an empty listing rather than 404)."""
    label_folder = nfc(label_folder)
    with ctx.db.read() as session:
        if session.scalar(select(exists().where(WebdavDeposit.circuit_id == circuit.id,
                                                WebdavDeposit.label_folder == label_folder))):
            return True
        return session.scalar(select(exists().where(Label.circuit_id == circuit.id, Label.name == label_folder))) \
            is True


def open_entry(ctx: AppContext, entry: FileEntry) -> BinaryIO:
    """A reader of the entry's content; ``CONTENT_RETRIEVAL`` if its blob is gone."""
    import io

    if entry.data is not None:
        return io.BytesIO(entry.data)
    assert entry.blob is not None
    try:
        return ctx.store.open(entry.blob)
    except BlobNotFound:
        raise ParafeError(E.CONTENT_RETRIEVAL, detail=f"blob of {entry.kind} {entry.ref} is missing") from None


def delete_entry(ctx: AppContext, folder: OutFolder, entry: FileEntry) -> None:
    """DELETE of a return: it leaves out/ (not the document's history). An acknowledgement, PES_Retour or Chorus
    flow deleted here also leaves its "remaining" list of the web services (D11)."""
    now = utcnow()
    with ctx.db.write() as session:
        if entry.kind == SIGNED:
            session.execute(update(WebdavDeposit).where(WebdavDeposit.document_id == entry.ref)
                            .values(signed_hidden_at=now))
        elif entry.kind == REFUSAL:
            session.execute(update(WebdavDeposit).where(WebdavDeposit.document_id == entry.ref)
                            .values(refusal_hidden_at=now))
        elif entry.kind in (ACK, FLOW):
            session.execute(update(ReturnItem).where(ReturnItem.id == entry.ref,
                                                     ReturnItem.subscriber_id == folder.subscriber_id,
                                                     ReturnItem.webdav_deleted_at.is_(None))
                            .values(webdav_deleted_at=now))
        else:  # pragma: no cover - receipts are in/
            raise ParafeError(E.METHOD_NOT_ALLOWED)


# --- purge -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeReport:
    signed: int
    refusals: int


def _purge(session: Session, now: datetime) -> PurgeReport:
    cutoff = now - OUT_TTL
    old_docs = select(Document.id).where(Document.updated_at < cutoff)
    signed = session.execute(update(WebdavDeposit).where(
        WebdavDeposit.signed_hidden_at.is_(None), WebdavDeposit.document_id.in_(
            old_docs.where(Document.signed_blob_sha256.is_not(None)))).values(signed_hidden_at=now))
    refusals = session.execute(update(WebdavDeposit).where(
        WebdavDeposit.refusal_hidden_at.is_(None), WebdavDeposit.document_id.in_(
            old_docs.where(Document.state.in_(REFUSAL_STATES)))).values(refusal_hidden_at=now))
    return PurgeReport(signed=int(getattr(signed, "rowcount", 0) or 0),
                       refusals=int(getattr(refusals, "rowcount", 0) or 0))


def purge_webdav(ctx: AppContext, now: datetime | None = None) -> PurgeReport:
    """The daily purge of spec §4.5, made durable (idempotent; safe to run from several workers).

    Listings already hide receipts after 15 minutes and returns after 15 days; this records the purge of signed
    files and refusal envelopes whose document has not changed for 15 days, so that a later change of the
    document (archiving…) cannot make them reappear. Acknowledgements and flows are dated by their own row.
    """
    with ctx.db.write() as session:
        return _purge(session, now or utcnow())

