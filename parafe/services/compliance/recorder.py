"""The compliance recorder: observations kept in memory, written in batches (issue 21).

The connectors' recording point calls :meth:`Recorder.observe` once per request: it only updates dictionaries
under a lock (a few microseconds). A daemon thread calls :meth:`Recorder.flush` every
``PARAFE_COMPLIANCE_FLUSH_SECONDS``: ONE write transaction per flush that upserts per-client per-hour
counters (``compliance_counters``: count, shortest listing interval), the clients' certificates, the last
examples of each rule (a ring capped at ``PARAFE_COMPLIANCE_EXAMPLES`` rows per client and rule) and the
pending duties (capped at :data:`MAX_PENDING` per client). Storage is therefore bounded by clients × hours ×
kinds, whatever the traffic; counters older than ``PARAFE_COMPLIANCE_DAYS`` are deleted.

Counters are additive, so several server processes (or nodes) flushing into the same tables stay right. The
polling interval is measured per process (the time since the same client last listed the same target in this
process): with N processes a client's fast polling may be split between them and under-reported, never
over-reported.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import and_, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from parafe.context import AppContext
from parafe.db.models import ComplianceClient, ComplianceCounter, ComplianceExample, CompliancePending
from parafe.services.compliance.classify import Observation, describe_target

log = logging.getLogger(__name__)

MAX_PENDING = 500  # pending duties kept per client (the oldest go first)
MAX_TARGETS = 20_000  # (client, listed target) pairs whose last listing time is remembered
MAX_BUFFERED_EXAMPLES = 2_000  # examples waiting for the next flush (more are dropped)
DETAIL_LENGTH = 500


@dataclass(frozen=True)
class ClientCert:
    """The certificate a request came with (from the identity middleware's verdict)."""

    fingerprint: str
    subject: str
    email: str | None
    not_after: datetime | None


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


class Recorder:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, datetime, str], list[Any]] = {}  # → [count, min_gap, last_at]
        self._clients: dict[str, tuple[ClientCert, datetime]] = {}
        self._examples: list[tuple[str, str, datetime, str]] = []
        self._pending: list[tuple[bool, str, str, str, datetime]] = []  # (open?, fp, kind, key, at)
        self._last_listing: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._last_retention = 0.0

    # --- hot path

    def observe(self, cert: ClientCert, obs: Observation, *, now: float | None = None) -> None:
        wall = time.time() if now is None else now
        at = datetime.fromtimestamp(wall, UTC)
        hour = _hour(at)
        fp = cert.fingerprint
        with self._lock:
            self._clients[fp] = (cert, at)
            gap: float | None = None
            if obs.listing_target is not None:
                key = (fp, obs.listing_target)
                previous = self._last_listing.pop(key, None)
                self._last_listing[key] = wall
                if len(self._last_listing) > MAX_TARGETS:
                    self._last_listing.popitem(last=False)
                if previous is not None:
                    gap = max(0.0, wall - previous)
            kinds = list(obs.kinds)
            if gap is not None and gap < self.settings.compliance_poll_floor_seconds:
                kinds.append("listing_fast")
                seconds = f"{gap:.1f}".replace(".", ",")
                self._add_example(fp, "polling", at, f"{describe_target(obs.listing_target or '')} : "
                                                     f"{seconds} s après la précédente")
            for kind in kinds:
                entry = self._counters.get((fp, hour, kind))
                if entry is None:
                    entry = self._counters[(fp, hour, kind)] = [0, None, at]
                entry[0] += 1
                entry[2] = at
                if kind == "listing" and gap is not None and (entry[1] is None or gap < entry[1]):
                    entry[1] = gap
            for rule, detail in obs.examples:
                self._add_example(fp, rule, at, detail)
            for duty, path in obs.opens:
                self._pending.append((True, fp, duty, path[:512], at))
            for duty, path in obs.closes:
                self._pending.append((False, fp, duty, path[:512], at))
        self._ensure_thread()

    def _add_example(self, fp: str, rule: str, at: datetime, detail: str) -> None:
        if len(self._examples) < MAX_BUFFERED_EXAMPLES:
            self._examples.append((fp, rule, at, detail[:DETAIL_LENGTH]))

    # --- batched writes

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._flush_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="parafe-compliance", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.compliance_flush_seconds):
            try:
                self.flush()
            except Exception:  # never lose the thread; the next flush retries what it can
                log.exception("compliance flush failed")

    def close(self) -> None:
        self._stop.set()
        try:
            self.flush()
        except Exception:
            log.exception("compliance flush at exit failed")

    def flush(self) -> int:
        """Write what was observed since the last flush; returns the number of counter rows upserted."""
        with self._flush_lock:
            with self._lock:
                counters, self._counters = self._counters, {}
                clients, self._clients = self._clients, {}
                examples, self._examples = self._examples, []
                pending, self._pending = self._pending, []
            if not (counters or clients or examples or pending):
                return 0
            try:
                self._write(counters, clients, examples, pending)
            except Exception:
                with self._lock:  # keep the counts for the next attempt (examples and duties are dropped)
                    for key, (count, gap, at) in counters.items():
                        entry = self._counters.setdefault(key, [0, None, at])
                        entry[0] += count
                        entry[1] = gap if entry[1] is None else (entry[1] if gap is None else min(gap, entry[1]))
                raise
            return len(counters)

    def _insert(self, table: Any) -> Any:
        return (sqlite.insert(table) if self.ctx.db.is_sqlite else postgresql.insert(table))

    def _write(self, counters: dict[tuple[str, datetime, str], list[Any]],
               clients: dict[str, tuple[ClientCert, datetime]],
               examples: list[tuple[str, str, datetime, str]],
               pending: list[tuple[bool, str, str, str, datetime]]) -> None:
        limit = self.settings.compliance_examples
        # only the last ``limit`` examples of each client and rule can survive the ring: write no more
        kept: dict[tuple[str, str], list[tuple[str, str, datetime, str]]] = {}
        for example in examples:
            ring = kept.setdefault((example[0], example[1]), [])
            ring.append(example)
            if len(ring) > limit:
                del ring[0]
        examples = [e for ring in kept.values() for e in ring]
        # the last operation on a duty wins (a GET then its DELETE in the same batch writes one DELETE)
        net: dict[tuple[str, str, str], tuple[bool, datetime]] = {}
        for opened, fp, kind, key, at in pending:
            net.pop((fp, kind, key), None)
            net[(fp, kind, key)] = (opened, at)
        pending = [(opened, fp, kind, key, at) for (fp, kind, key), (opened, at) in net.items()]
        with self.ctx.db.write() as session:
            for fp, (cert, at) in sorted(clients.items()):
                stmt = self._insert(ComplianceClient).values(
                    fingerprint=fp, subject=cert.subject[:1024], email=cert.email, not_after=cert.not_after,
                    first_seen=at, last_seen=at)
                session.execute(stmt.on_conflict_do_update(
                    index_elements=["fingerprint"],
                    set_={"subject": stmt.excluded.subject, "email": stmt.excluded.email,
                          "not_after": stmt.excluded.not_after, "last_seen": stmt.excluded.last_seen}))
            table = ComplianceCounter.__table__
            for (fp, hour, kind), (count, gap, at) in sorted(counters.items()):
                stmt = self._insert(ComplianceCounter).values(
                    fingerprint=fp, hour=hour, kind=kind, count=count, min_gap=gap, last_at=at)
                new_gap = stmt.excluded.min_gap
                old_gap = table.c.min_gap
                session.execute(stmt.on_conflict_do_update(
                    index_elements=["fingerprint", "hour", "kind"],
                    set_={"count": table.c.count + stmt.excluded.count,
                          "min_gap": case((old_gap.is_(None), new_gap), (new_gap.is_(None), old_gap),
                                          (new_gap < old_gap, new_gap), else_=old_gap),
                          "last_at": stmt.excluded.last_at}))
            touched: set[tuple[str, str]] = set()
            for fp, rule, at, detail in examples:
                session.add(ComplianceExample(fingerprint=fp, rule=rule, at=at, detail=detail))
                touched.add((fp, rule))
            session.flush()
            for fp, rule in sorted(touched):
                keep = (select(ComplianceExample.id).where(ComplianceExample.fingerprint == fp,
                                                            ComplianceExample.rule == rule)
                        .order_by(ComplianceExample.at.desc(), ComplianceExample.id.desc()).limit(limit))
                session.execute(delete(ComplianceExample).where(
                    ComplianceExample.fingerprint == fp, ComplianceExample.rule == rule,
                    ComplianceExample.id.not_in(keep)).execution_options(synchronize_session=False))
            owing: set[str] = set()
            for opened, fp, kind, key, at in pending:
                if opened:
                    stmt = self._insert(CompliancePending).values(fingerprint=fp, kind=kind, key=key, at=at)
                    session.execute(stmt.on_conflict_do_nothing(index_elements=["fingerprint", "kind", "key"]))
                    owing.add(fp)
                else:
                    session.execute(delete(CompliancePending).where(and_(
                        CompliancePending.fingerprint == fp, CompliancePending.kind == kind,
                        CompliancePending.key == key)).execution_options(synchronize_session=False))
            for fp in sorted(owing):
                keep = (select(CompliancePending.id).where(CompliancePending.fingerprint == fp)
                        .order_by(CompliancePending.at.desc(), CompliancePending.id.desc()).limit(MAX_PENDING))
                session.execute(delete(CompliancePending).where(
                    CompliancePending.fingerprint == fp, CompliancePending.id.not_in(keep))
                    .execution_options(synchronize_session=False))
            if time.monotonic() - self._last_retention > 3600:
                self._last_retention = time.monotonic()
                cutoff = datetime.now(UTC) - timedelta(days=self.settings.compliance_days)
                session.execute(delete(ComplianceCounter).where(ComplianceCounter.hour < cutoff)
                                .execution_options(synchronize_session=False))


_LOCK = threading.Lock()


def recorder(ctx: AppContext) -> Recorder:
    """The process's recorder for ``ctx`` (one per application context)."""
    found = ctx.compliance_recorder
    if found is None:
        with _LOCK:
            if ctx.compliance_recorder is None:
                ctx.compliance_recorder = Recorder(ctx)
            found = ctx.compliance_recorder
    return cast(Recorder, found)  # only this function sets it (the context types it by a Protocol)


def flush(ctx: AppContext) -> None:
    """Write this process's buffered observations now (reports call it before reading)."""
    if ctx.compliance_recorder is not None:
        ctx.compliance_recorder.flush()
