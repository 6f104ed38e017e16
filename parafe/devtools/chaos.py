"""The chaos scenario (``parafe dev chaos``, docs/chaos.md): several nodes under ``kill -9``, PostgreSQL restarted,
S3 failing for a while, a mixed load, then the invariants checked and counted.

What runs, all on this machine:

- one PostgreSQL database (a new one on the server named by ``--postgres``), shared by every process, which is
  also the job queue (``PARAFE_QUEUE=postgres``);
- an S3 server: moto's server mode behind :class:`parafe.devtools.faulty_s3.FaultInjector` (a separate process);
- ``nodes`` × ``parafe serve`` (one process each, no in-process job worker) and ``workers`` × ``parafe worker``,
  each with its own ``$PARAFE_HOME`` copied from one initialised home (same PKI, same portal secret);
- ``clients`` load threads for ``duration`` seconds: REST, SOAP and WebDAV deposits in ``serveur``, REST deposits in
  ``bureautique`` then the visa and the signature through the portal's API (the signer's own key, as the local
  helper would sign), REST deposits in ``otp`` then the OTP information, the link and the code (read from the
  development mail outbox), OSS ``signServerDoc``, downloads and deletes;
- meanwhile, every ``kill_every`` seconds a random running node or worker (never the last node serving) gets
  ``SIGKILL`` and is restarted after ``restart_after`` seconds; PostgreSQL is restarted ``pg_restarts`` times
  (``pg_ctlcluster``); S3 fails requests for ``s3_fault_seconds`` (at least, until one did fail) from 30 % of
  the run.

Then every process is up again, the outbox is left to drain, and :func:`check` counts, on the database and the
bucket: acknowledged ids without their row or blob (lost), signed documents whose signatures or « Signé »
entries are not one per signing step (duplicated / missing), documents stuck outside a final or waiting state,
orphan blobs older than the sweeper's grace period, and jobs left claimed by a dead worker. An acknowledged id is
one whose deposit answered success to the client; a deposit whose answer was lost with its node is not one.

The cluster (processes, database, S3) is :mod:`parafe.devtools.chaos_cluster`, the clients' load
:mod:`parafe.devtools.chaos_load`.

moto is a development dependency: the command needs ``pip install -e .[dev]`` (or ``--s3-endpoint`` of a real
S3-compatible server, without fault injection).
"""

from __future__ import annotations

import io
import json
import os
import random
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from parafe.devtools.chaos_cluster import Cluster, Proc
from parafe.devtools.chaos_load import Load
from parafe.devtools.chaos_report import DEFAULT_POSTGRES, ChaosOptions, Report
from parafe.domain.states import FINISHED_VALUES

SIGNING_STEPS = frozenset({"signature", "server_signature", "otp_signature"})
WAITING_STEPS = frozenset({"visa", "signature", "otp_signature", "metadata"})
WAITING_STATES = frozenset({"prepared", "otp_info_defined", "sent_for_visa", "sent_for_sign",
                            "ready_for_metadata", "metadata_defined", "otp_validated"})
FINAL_STATES = FINISHED_VALUES  # « Échec du traitement » is not final here: a document left in it is reported
SIGNED_STATES = ("signed", "otp_signed")


# --- the run -----------------------------------------------------------------------------------------------


def _chaos(cluster: Cluster, report: Report, rng: random.Random, stop: threading.Event) -> None:
    options = cluster.options
    start = time.monotonic()
    procs = [*cluster.nodes, *cluster.workers]
    pg_at = [options.duration * (i + 1) / (options.pg_restarts + 1) for i in range(options.pg_restarts)]
    s3_at = options.duration * 0.3
    s3_done = False
    s3_started: float | None = None
    next_kill = start + options.kill_every
    lock = threading.Lock()
    restarting: set[str] = set()
    helpers: list[threading.Thread] = []

    def restart(proc: Proc, pause: float) -> None:
        time.sleep(pause)
        proc.start()
        if proc.url:
            cluster.wait_node(proc)
        else:
            time.sleep(3.0)  # a worker is up once it has connected to the queue
        with lock:
            restarting.discard(proc.name)
    while not stop.wait(0.2):
        elapsed = time.monotonic() - start
        if pg_at and elapsed >= pg_at[0]:
            pg_at.pop(0)
            if cluster.restart_postgres():
                report.pg_restarts += 1
        if s3_started is None and elapsed >= s3_at:
            s3_started = elapsed
            cluster.say(f"  S3 : pannes injectées pendant {options.s3_fault_seconds:.0f} s au moins "
                        f"({options.s3_fault_rate:.0%} des requêtes)")
            cluster.s3_fault(True)
        if s3_started is not None and not s3_done and elapsed >= s3_started + options.s3_fault_seconds and (
                cluster.s3_failures() > 0 or elapsed >= s3_started + 4 * options.s3_fault_seconds):
            s3_done = True  # the window lasts until a request did fail (all nodes may have been down meanwhile)
            cluster.s3_fault(False)
            cluster.say(f"  S3 : fin des pannes (t={elapsed:.0f} s, {cluster.s3_failures()} requêtes en échec)")
        with lock:  # a supervisor's job (systemd's Restart=always): a process that exited by itself (it could
            # not reach PostgreSQL while starting, say) is started again
            exited = [p for p in procs if not p.alive() and p.name not in restarting]
            restarting.update(p.name for p in exited)
        for proc in exited:
            cluster.say(f"  {proc.name} s'est arrêté de lui-même : relancé (t={elapsed:.0f} s)")
            report.self_exits += 1
            helpers.append(threading.Thread(target=restart, args=(proc, 1.0), daemon=True))
            helpers[-1].start()
        if time.monotonic() >= next_kill:
            # a running process, and never the last node serving (the load keeps going through the other one)
            with lock:
                up = [p for p in procs if p.alive() and p.name not in restarting]
                nodes_up = [p for p in up if p.url]
                candidates = [p for p in up if not p.url or len(nodes_up) > 1]
            if not candidates:
                continue
            victim = rng.choice(candidates)
            cluster.say(f"  kill -9 {victim.name} (t={elapsed:.0f} s)")
            with lock:
                restarting.add(victim.name)
            victim.kill9()
            report.kills += 1

            helpers.append(threading.Thread(target=restart, args=(victim, options.restart_after), daemon=True))
            helpers[-1].start()
            next_kill = time.monotonic() + options.kill_every
    for helper in helpers:  # every restart in flight is done before the run goes on
        helper.join()


def _drain(cluster: Cluster, timeout: float) -> None:
    """Wait until no outbox row is due or claimed (every process up), or the timeout."""
    from sqlalchemy import func, select

    from parafe.db.models import OutboxItem, utcnow

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with cluster.ctx.db.read() as session:
            pending = session.scalar(select(func.count()).select_from(OutboxItem).where(
                OutboxItem.done_at.is_(None), OutboxItem.available_at <= utcnow() + timedelta(seconds=15)))
        if not pending:
            return
        time.sleep(1.0)


def _pdf_signatures(data: bytes) -> int:
    import pikepdf

    count = 0
    with pikepdf.open(io.BytesIO(data)) as pdf:
        form: Any = pdf.Root.get("/AcroForm")
        fields: list[Any] = list(form.get("/Fields", [])) if form is not None else []
        while fields:
            f = fields.pop()
            fields.extend(f.get("/Kids", []))
            if f.get("/FT") == "/Sig" and "/V" in f:
                count += 1
    return count


def check(cluster: Cluster, load: Load, report: Report) -> None:
    """The invariants, counted into ``report`` (see the module docstring)."""
    from sqlalchemy import select

    from parafe.db.models import CircuitStep, Document, HistoryEntry, OssDocument, OutboxItem, utcnow
    from parafe.services.blob_sweep import MIN_GRACE, sweep_orphan_blobs

    ctx = cluster.ctx
    store = ctx.store
    with ctx.db.read() as session:
        docs = {d.id: d for d in session.scalars(select(Document))}
        steps: dict[int, list[str]] = {}
        for step in session.scalars(select(CircuitStep).order_by(CircuitStep.circuit_id, CircuitStep.position)):
            steps.setdefault(step.circuit_id, []).append(step.kind)
        history: dict[int, list[str | None]] = {}
        for doc_id, state in session.execute(select(HistoryEntry.document_id, HistoryEntry.state)
                                             .order_by(HistoryEntry.id)):
            history.setdefault(doc_id, []).append(state)
        oss_docs = {d.id: (d.status, d.blob_sha256, d.signed_blob_sha256) for d in session.scalars(select(OssDocument))}
        pending = session.execute(select(OutboxItem.id, OutboxItem.kind, OutboxItem.document_id, OutboxItem.attempts,
                                         OutboxItem.available_at).where(OutboxItem.done_at.is_(None))).all()
        report.jobs_recovered = len(session.scalars(select(OutboxItem.id).where(OutboxItem.attempts > 1)).all())
    now = utcnow()
    for key, how in sorted(load.acked.items()):
        kind, _, raw = key.partition(":")
        ident = int(raw)
        if key in load.deleted:
            doc = docs.get(ident)
            if doc is not None and doc.deleted_at is None:
                report.deleted_still_there.append(f"{ident} ({how})")
            continue
        if kind == "oss":
            found = oss_docs.get(ident)
            if found is None or not found[2] or not store.exists(found[2]):
                report.lost.append(f"OSS {ident}")
            elif _pdf_signatures(store.read_bytes(found[2])) != 1:
                report.duplicated.append(f"OSS {ident}: signatures")
            continue
        doc = docs.get(ident)
        if doc is None or doc.deleted_at is not None or not store.exists(doc.blob_sha256) or (
                doc.signed_blob_sha256 and not store.exists(doc.signed_blob_sha256)):
            report.lost.append(f"{ident} ({how})")
    for doc in docs.values():
        if doc.deleted_at is not None:
            continue
        kinds = steps.get(doc.circuit_id, [])
        states = history.get(doc.id, [])
        signing = sum(1 for k in kinds if k in SIGNING_STEPS)
        signed_entries = sum(1 for s in states if s in SIGNED_STATES)
        if signed_entries:
            report.signed_checked += 1
            done_steps = sum(1 for k in kinds[: (doc.current_step or 0) + 1] if k in SIGNING_STEPS) \
                if doc.state not in FINAL_STATES else signing
            if doc.kind == "pdf" and doc.signed_blob_sha256 and store.exists(doc.signed_blob_sha256):
                in_pdf = _pdf_signatures(store.read_bytes(doc.signed_blob_sha256))
                if in_pdf != done_steps:
                    report.duplicated.append(f"{doc.id}: {in_pdf} signature(s) PDF pour {done_steps} étape(s)")
            if signed_entries != done_steps:
                report.duplicated.append(f"{doc.id}: {signed_entries} entrée(s) « Signé » pour {done_steps} étape(s)")
        if doc.state in FINAL_STATES:
            continue
        step = kinds[doc.current_step] if doc.current_step is not None and doc.current_step < len(kinds) else (
            kinds[0] if kinds else None)
        if step in WAITING_STEPS and doc.state in WAITING_STATES:
            continue
        report.stuck.append(f"{doc.id} {doc.state} (étape {step})")
    for item_id, kind, doc_id, attempts, available_at in pending:
        due = available_at if available_at.tzinfo else available_at.replace(tzinfo=now.tzinfo)
        if due <= now:
            report.jobs_claimed.append(f"outbox {item_id} {kind} doc {doc_id} ({attempts} essais)")
    real = sweep_orphan_blobs(ctx, grace=MIN_GRACE, dry_run=True)
    report.orphans_old = real.deleted
    later = sweep_orphan_blobs(ctx, grace=MIN_GRACE, dry_run=True, now=now + MIN_GRACE + timedelta(minutes=1))
    report.orphans_recent = later.deleted


def run(options: ChaosOptions) -> Report:
    """Set up, load and break, recover, check; returns the report (the caller prints it)."""
    rng = random.Random(options.seed)
    report = Report()
    cluster = Cluster(options)
    try:
        cluster.setup()
        options.say(f"Chaos : {options.nodes} nœuds, {options.workers} workers, {options.clients} clients, "
                    f"{options.duration:.0f} s")
        load = Load(cluster, report, rng)
        stop_chaos = threading.Event()
        chaos = threading.Thread(target=_chaos, args=(cluster, report, rng, stop_chaos), daemon=True)
        clients = [threading.Thread(target=load.run_client, daemon=True) for _ in range(options.clients)]
        chaos.start()
        for thread in clients:
            thread.start()
        time.sleep(options.duration)
        stop_chaos.set()
        chaos.join()
        cluster.s3_fault(False)
        load.stop.set()
        for thread in clients:
            thread.join(timeout=120)
        options.say("Chaos : fin de la charge, tous les processus relancés, vidage de la boîte d'envoi…")
        time.sleep(options.restart_after + 1)
        for proc in [*cluster.nodes, *cluster.workers]:
            if not proc.alive():
                proc.start()
        for node in cluster.nodes:
            cluster.wait_node(node)
        load.stop.clear()
        load.finish_pending(60)
        _drain(cluster, options.drain_timeout)
        report.s3_failed_requests = cluster.s3_failures()
        check(cluster, load, report)
    finally:
        cluster.teardown()
    return report


def main_from_args(args: Any) -> int:
    """``parafe dev chaos`` (options in :mod:`parafe.worker_cli`; ``--postgres`` defaults to
    ``$PARAFE_TEST_POSTGRES_URL``, else :data:`DEFAULT_POSTGRES`)."""
    postgres = args.postgres or os.environ.get("PARAFE_TEST_POSTGRES_URL") or DEFAULT_POSTGRES
    options = ChaosOptions(duration=args.duration, clients=args.clients, kill_every=args.kill_every,
                           restart_after=args.restart_after, pg_restarts=args.pg_restarts,
                           s3_fault_seconds=args.s3_fault_seconds, postgres=postgres,
                           workdir=Path(args.workdir) if args.workdir else None, keep=args.keep, seed=args.seed)
    try:
        import moto  # noqa: F401
    except ImportError:
        print("parafe dev chaos demande moto (pip install -e .[dev]) pour le serveur S3 de test", file=sys.stderr)
        return 2
    report = run(options)
    for line in report.lines() + report.details():
        print(line, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"lines": report.lines(), "failures": report.failures,
                                               "acked": dict(report.acked)}, ensure_ascii=False, indent=2))
    return 0 if report.failures == 0 else 1
