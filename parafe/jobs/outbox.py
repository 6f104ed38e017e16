"""The transactional outbox: claiming due rows, executing them, retrying with backoff, giving up.

A state change writes an :class:`~parafe.db.models.OutboxItem` in its own transaction (docs/spec/DESIGN.md). A
dispatcher claims due rows — a claim pushes ``available_at`` one lease ahead and counts the attempt — and hands
their ids to the job queue; :func:`execute` runs the handler of the row's kind. A handler finishes with ONE
transaction that re-reads the row under lock (:func:`lock_pending`), applies its effect and sets ``done_at``:
a row executed twice (worker killed after the effect, lease expired while it ran) changes the database once.

A failed attempt is retried after ``backoff * 2**(attempts-1)`` seconds (capped); after ``max_attempts`` the
handler's ``give_up`` runs (e.g. the Helios failure state; for a document's step without one, the default
« Échec du traitement » of :mod:`parafe.workflow.failures`) and the row is closed with its last error. A worker
killed in the middle of a row leaves it claimed: it is dispatched again when its lease expires.

This module imports no handler: a module declares its kinds with :func:`handler`, and the composition root
(:mod:`parafe.composition`, at application and worker start-up) registers the modules whose kinds run in the
process (:func:`register`). A worker refuses to start while a pending row has a kind nobody registered
(:func:`check_registered`).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from parafe.config import workflow_settings
from parafe.context import AppContext
from parafe.db.models import OutboxItem, utcnow

log = logging.getLogger(__name__)

NEW_ITEMS_KEY = "parafe_new_outbox"


RunMany = Callable[[AppContext, list[OutboxItem]], list[tuple[OutboxItem, Exception]]]


@dataclass(frozen=True)
class Handler:
    """What runs an outbox kind: ``run(ctx, item)``, optionally ``give_up(ctx, item, error)`` and
    ``run_many(ctx, items)``: several rows of the kind at once (one signing batch, one closing transaction);
    it returns the rows that failed with their error, and raising means "run them one by one instead"."""

    run: Callable[[AppContext, OutboxItem], None]
    give_up: Callable[[AppContext, OutboxItem, str], None] | None = None
    run_many: RunMany | None = None


_DECLARED: dict[str, dict[str, Handler]] = {}  # module name -> the kinds it declares
_HANDLERS: dict[str, Handler] = {}  # the kinds registered in this process (by the composition root)
_DEFAULT_GIVE_UP: dict[str, Callable[[AppContext, OutboxItem, str], None]] = {}


class UnknownJobKind(RuntimeError):
    """Outbox rows of a kind no registered module handles: raised when a worker starts (issue 19)."""

    def __init__(self, kinds: Iterable[str]) -> None:
        self.kinds = sorted(kinds)
        super().__init__("tâches en attente d'un type que personne ne traite : " + ", ".join(self.kinds))


def handler(kind: str, give_up: Callable[[AppContext, OutboxItem, str], None] | None = None, *,
            many: RunMany | None = None
            ) -> Callable[[Callable[[AppContext, OutboxItem], None]], Callable[[AppContext, OutboxItem], None]]:
    """Declare the handler of an outbox kind in its module (decorator); it runs once the composition root has
    registered the module (:func:`register`)."""
    def decorate(func: Callable[[AppContext, OutboxItem], None]) -> Callable[[AppContext, OutboxItem], None]:
        _DECLARED.setdefault(func.__module__, {})[kind] = Handler(func, give_up, many)
        return func
    return decorate


def register(*modules: ModuleType) -> None:
    """Register the outbox kinds declared by ``modules`` (the composition root: application and worker
    start-up, :mod:`parafe.composition`). A module that declares no kind is a wiring error."""
    for module in modules:
        declared = _DECLARED.get(module.__name__)
        if not declared:
            raise RuntimeError(f"{module.__name__} ne déclare aucune tâche")
        _HANDLERS.update(declared)


def default_give_up(kind: str, give_up: Callable[[AppContext, OutboxItem, str], None]) -> None:
    """The give-up of ``kind`` when its handler has none (the workflow's « Échec du traitement », issue 18)."""
    _DEFAULT_GIVE_UP[kind] = give_up


def handlers() -> dict[str, Handler]:
    """The registered kinds (empty until the composition root ran)."""
    return _HANDLERS


def check_registered(ctx: AppContext) -> None:
    """Fail at start-up when a pending row has a kind nobody registered (instead of closing it at run time)."""
    if not _HANDLERS:
        raise RuntimeError("aucune tâche enregistrée : parafe.composition.install_jobs() n'a pas été appelée")
    with ctx.db.read() as session:
        kinds = set(session.scalars(select(OutboxItem.kind).where(OutboxItem.done_at.is_(None)).distinct()))
    unknown = kinds - set(_HANDLERS)
    if unknown:
        raise UnknownJobKind(unknown)


def add(session: Session, kind: str, document_id: int | None = None, payload: dict[str, Any] | None = None,
        *, delay: float = 0.0, flush: bool = True) -> OutboxItem:
    """Add an outbox row to the current transaction (the workers are woken right after the commit).

    ``flush=False`` leaves the row to the transaction's next flush (its ``id`` is not known yet): the workflow
    engine adds rows for a whole batch of documents, inserted together (issue 17)."""
    item = OutboxItem(kind=kind, document_id=document_id, payload=dict(payload or {}),
                      available_at=utcnow() + timedelta(seconds=delay), created_at=utcnow())
    session.add(item)
    if flush:
        session.flush()
    if delay <= 0:
        session.info.setdefault(NEW_ITEMS_KEY, []).append(item)
    return item


def new_items(session: Session) -> list[int]:
    """The ids of the rows due now that this transaction added (flushing what is pending)."""
    items: list[OutboxItem] = session.info.get(NEW_ITEMS_KEY, [])
    if any(item.id is None for item in items):
        session.flush()
    return [item.id for item in items]


def lock_pending(session: Session, item_id: int) -> OutboxItem | None:
    """The row, locked for this transaction, if it is still pending; None when it was done meanwhile."""
    item = session.scalar(select(OutboxItem).where(OutboxItem.id == item_id).with_for_update())
    if item is None or item.done_at is not None:
        return None
    return item


def close(item: OutboxItem, error: str | None = None) -> None:
    item.done_at = utcnow()
    if error is not None:
        item.last_error = error[:4000]


def claim(ctx: AppContext, ids: Iterable[int] | None = None, limit: int = 50, *, one_kind: bool = False
          ) -> list[int]:
    """Claim due rows (given ids, or the oldest due ones): each claimed id is handed to exactly one caller
    per lease period. ``one_kind``: only rows of the oldest due row's kind, and only one unless the kind has a
    batch handler (a worker's batch: rows of one kind run together; a slow row — a remote send waiting for its
    answer — holds back no other row, which the next free thread claims)."""
    s = workflow_settings()
    now = utcnow()
    lease_end = now + timedelta(seconds=s.lease_seconds)
    with ctx.db.write() as session:
        stmt = select(OutboxItem.id).where(OutboxItem.done_at.is_(None), OutboxItem.available_at <= now)
        if ids is not None:
            wanted = list(ids)
            if not wanted:
                return []
            stmt = stmt.where(OutboxItem.id.in_(wanted))
        if one_kind:
            kind = session.scalar(stmt.with_only_columns(OutboxItem.kind)
                                  .order_by(OutboxItem.available_at, OutboxItem.id).limit(1))
            if kind is None:
                return []
            stmt = stmt.where(OutboxItem.kind == kind)
            entry = _HANDLERS.get(kind)
            if entry is None or entry.run_many is None:
                limit = 1  # rows run one by one: each to the next free thread (a slow send holds back no other)
        stmt = stmt.order_by(OutboxItem.available_at, OutboxItem.id).limit(limit)
        if not ctx.db.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        candidates = list(session.scalars(stmt))
        if not candidates:
            return []
        # one statement for the batch; the conditions are checked again (a row claimed or closed meanwhile)
        claimed = set(session.scalars(
            update(OutboxItem)
            .where(OutboxItem.id.in_(candidates), OutboxItem.done_at.is_(None), OutboxItem.available_at <= now)
            .values(available_at=lease_end, attempts=OutboxItem.attempts + 1)
            .returning(OutboxItem.id)
            .execution_options(synchronize_session=False)))
    return [item_id for item_id in candidates if item_id in claimed]


def next_due(ctx: AppContext) -> datetime | None:
    """When the next pending row becomes due (None: nothing pending)."""
    with ctx.db.read() as session:
        return session.scalar(select(OutboxItem.available_at).where(OutboxItem.done_at.is_(None))
                              .order_by(OutboxItem.available_at).limit(1))


def backoff_seconds(attempts: int) -> float:
    s = workflow_settings()
    return float(min(s.backoff_seconds * (2 ** max(attempts - 1, 0)), s.backoff_max_seconds))


def execute(ctx: AppContext, item_id: int) -> None:
    """Run one claimed outbox row (idempotent: a row already done is skipped)."""
    with ctx.db.read() as session:
        item = session.get(OutboxItem, item_id)
        if item is None or item.done_at is not None:
            return
        session.expunge(item)
    _execute_item(ctx, item)


def execute_many(ctx: AppContext, item_ids: Iterable[int]) -> None:
    """Run claimed outbox rows: read in one query, rows of a kind with ``run_many`` handed to it together
    (claim order kept between kinds), the others one by one."""
    wanted = list(item_ids)
    if not wanted:
        return
    with ctx.db.read() as session:
        rows = {item.id: item for item in session.scalars(
            select(OutboxItem).where(OutboxItem.id.in_(wanted), OutboxItem.done_at.is_(None)))}
        for item in rows.values():
            session.expunge(item)
    groups: dict[str, list[OutboxItem]] = {}
    for item_id in wanted:
        if item_id in rows:
            groups.setdefault(rows[item_id].kind, []).append(rows[item_id])
    for kind, items in groups.items():
        entry = _HANDLERS.get(kind)
        if entry is None or entry.run_many is None or len(items) == 1:
            for item in items:
                _execute_item(ctx, item)
            continue
        try:
            failed = entry.run_many(ctx, items)
        except Exception:  # the batch as a whole failed: each row on its own (handlers are idempotent)
            log.warning("outbox: batch of %s %s failed, running them one by one", len(items), kind, exc_info=True)
            for item in items:
                execute(ctx, item.id)
            continue
        for item, exc in failed:
            error = f"{exc.__class__.__name__}: {exc}"
            log.warning("outbox %s (%s) attempt %s failed: %s", item.id, item.kind, item.attempts, error)
            _failed(ctx, item, entry, error)


def _execute_item(ctx: AppContext, item: OutboxItem) -> None:
    item_id = item.id
    entry = _HANDLERS.get(item.kind)
    if entry is None:
        if not _HANDLERS:
            raise RuntimeError("aucune tâche enregistrée : parafe.composition.install_jobs() n'a pas été appelée")
        log.error("outbox %s: unknown kind %s", item_id, item.kind)
        _close(ctx, item_id, f"type de tâche inconnu : {item.kind}")
        return
    try:
        entry.run(ctx, item)
    except Exception as exc:  # a failed attempt: retry later or give up
        error = f"{exc.__class__.__name__}: {exc}"
        log.warning("outbox %s (%s) attempt %s failed: %s", item_id, item.kind, item.attempts, error)
        log.debug("%s", traceback.format_exc())
        _failed(ctx, item, entry, error)


def _close(ctx: AppContext, item_id: int, error: str | None) -> None:
    with ctx.db.write() as session:
        item = lock_pending(session, item_id)
        if item is not None:
            close(item, error)


def _failed(ctx: AppContext, item: OutboxItem, entry: Handler, error: str) -> None:
    s = workflow_settings()
    if item.attempts >= s.max_attempts:
        give_up = entry.give_up or _DEFAULT_GIVE_UP.get(item.kind)
        if give_up is not None:
            try:
                give_up(ctx, item, error)
            except Exception:
                log.exception("outbox %s: give_up failed", item.id)
                _reschedule(ctx, item.id, error, backoff_seconds(item.attempts))
                return
        _close(ctx, item.id, f"abandon après {item.attempts} essais : {error}")
        return
    _reschedule(ctx, item.id, error, backoff_seconds(item.attempts))


def _reschedule(ctx: AppContext, item_id: int, error: str, delay: float) -> None:
    with ctx.db.write() as session:
        item = lock_pending(session, item_id)
        if item is not None:
            item.last_error = error[:4000]
            item.available_at = utcnow() + timedelta(seconds=delay)


def run_due(ctx: AppContext, *, limit: int = 100) -> int:
    """Claim and execute due rows in this thread (tools and tests); returns how many ran."""
    ran = 0
    while ran < limit:
        ids = claim(ctx, limit=min(20, limit - ran))
        if not ids:
            break
        execute_many(ctx, ids)
        ran += len(ids)
    return ran
