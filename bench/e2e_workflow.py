"""End-to-end throughput of the ``serveur`` circuit: REST deposits by several clients → server signature →
« Signé », against a real ``parafe serve`` (issue 17).

One ``parafe serve`` (TLS, default process count and embedded job worker; SQLite by default, or PostgreSQL on a
fresh database created and dropped with ``--postgres [URL]``) on a fresh home. ``--clients`` threads (4), each
with its own keep-alive TLS connection and the demo agent's certificate, deposit ``--docs`` distinct PDFs (300,
two pages each) to ``/parapheur-ws/rest/v1/documents/v2/123456789/serveur/upload``; the bench then polls the
database until every document has its « Signé » history entry (the label comes from the state table,
:mod:`parafe.domain.states`). With ``--workers N`` the embedded worker is off and N ``parafe worker`` processes
run the jobs instead; ``--compare-workers`` measures 1 then 2 such workers and prints their ratio.

Figures (the clock of the history entries and the client's are the same machine's):

- ``rate``: documents per second end to end, N / (last « Signé » entry − first deposit sent);
- ``p50`` / ``p99``: deposit → signed latency per document, from the moment its deposit was sent to its
  « Signé » entry;
- ``deposit``: REST deposits per second (what the clients managed on their own): ``rate`` cannot exceed it;
- ``lag``: last « Signé » entry − last deposit answered (how far the workflow trails the deposits; near 0 when
  the workflow keeps up and the deposits are the limit).

``--backlog`` (with ``--workers N`` or ``--compare-workers``) deposits every document before the workers start:
``rate`` is then the workflow's own (N / (last « Signé » − the workers' first claim of one of these documents'
outbox rows)), whatever the deposits manage, and p50/p99 are measured from that first claim. (Until 2026-12-07
the clock started at the first « Signé »; a batch's documents are signed together, so that left out the first
batch of every executor thread: with 600 documents and 2 threads per worker, +12 % for one worker and +27 % for
two, a ratio 2-vs-1 inflated by about 13 %.)

``--pin-workers`` runs worker i on core i only: one worker on one core against two workers on two cores (how the
workflow scales with the cores its workers get, the machine's other work aside). The bench waits first until
creating a file is cheap again (:func:`benchlib.settle_file_system`) and deletes its homes only once every
configuration is measured: on these machines' ext4 without a journal, the files a run deletes slow every file
creation down for minutes, and the next configuration would pay for the previous one's clean-up.

``--profile FILE`` samples the server's processes with py-spy during the run (``--format raw``: collapsed
stacks) and prints the functions with the most samples (self and inclusive) on stderr.

Usage: .venv/bin/python bench/e2e_workflow.py [--docs 300] [--clients 4] [--runs 1] [--postgres [URL]]
                                              [--workers N | --compare-workers] [--backlog] [--pin-workers]
                                              [--profile FILE]
Prints one line per configuration:
  e2e_workflow backend=sqlite workers=embedded docs=300 rate=…/s p50=…s p99=…s deposit=…/s lag=…s
               cores_busy=…/N load=… (median of R: …)   [one line]
and with --compare-workers one more: ``e2e_workflow … ratio_2_vs_1=… (… ceiling on this machine …)``.
``cores_busy`` is the mean number of busy cores of the whole machine (``/proc/stat``) while the documents were
signed: when one worker already keeps 1.25 of 2 cores busy, a second one can add at most 2 / 1.25 = 1.6 times.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    MachineCpu,
    create_pg_database,
    delete_at_exit,
    drop_pg_database,
    free_port,
    pdf_of_pages,
    settle_file_system,
)

SIREN = "123456789"
AGENT = "agent@demo.parafe.test"
REST_PATH = f"/parapheur-ws/rest/v1/documents/v2/{SIREN}/serveur/upload"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass
class Run:
    rate: float
    p50: float
    p99: float
    deposit_rate: float
    lag: float  # last « Signé » entry − last deposit answered: how far the workflow trails the deposits
    errors: int
    cores: float = 0.0  # mean busy cores of the machine while the documents were signed


def _env(home: Path, url: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFE_")}
    env.update(PARAFE_HOME=str(home), PARAFE_DATABASE_URL=url)
    # PARAFE_QUEUE, PARAFE_WORKER_THREADS… given to the bench go to the server and the workers
    env.update({k: v for k, v in os.environ.items() if k.startswith("PARAFE_") and k not in env})
    env.update(extra)
    return env


def _wait_up(port: int, ca: Path, proc: subprocess.Popen[bytes]) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start")


def _multipart(name: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/pdf\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(len(body))}


def _deposit_all(port: int, ssl_ctx: ssl.SSLContext, bodies: list[tuple[bytes, dict[str, str]]],
                 clients: int) -> tuple[dict[int, float], int, float, float]:
    """Every deposit through ``clients`` connections: {document id: time sent}, errors, first sent, last answer."""
    sent: dict[int, float] = {}
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    ends: list[float] = []

    def client(items: list[tuple[bytes, dict[str, str]]]) -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl_ctx, timeout=300)
        conn.connect()
        barrier.wait()
        for body, headers in items:
            start = time.time()
            try:
                conn.request("POST", REST_PATH, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                status = response.status
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl_ctx, timeout=300)
                status, payload = 0, repr(exc).encode()
            with lock:
                if status == 200 and payload.strip().isdigit():
                    sent[int(payload.strip())] = start
                else:
                    errors.append(f"{status} {payload[:200]!r}")
        conn.close()
        with lock:
            ends.append(time.time())

    threads = [threading.Thread(target=client, args=(bodies[i::clients],)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    first = time.time()
    for t in threads:
        t.join()
    if errors:
        print(f"  {len(errors)} deposit errors, first: {errors[0]}", file=sys.stderr)
    return sent, len(errors), first, max(ends)


def _signed_times(url: str, ids: set[int], timeout: float) -> dict[int, float]:
    """Poll the database until every document of ``ids`` has its « Signé » entry: {id: time of that entry}."""
    import sqlalchemy as sa

    from parafe.db.models import HistoryEntry
    from parafe.domain.states import State, label

    assert label(State.SIGNED) == "Signé"
    engine = sa.create_engine(url)
    stmt = (sa.select(HistoryEntry.document_id, sa.func.min(HistoryEntry.created_at))
            .where(HistoryEntry.state == State.SIGNED.value).group_by(HistoryEntry.document_id))
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(stmt).all()
            done = {int(i): _epoch(at) for i, at in rows if int(i) in ids}
            if len(done) >= len(ids) or time.monotonic() > deadline:
                return done
            time.sleep(0.25)
    finally:
        engine.dispose()


def _processing_start(url: str, ids: set[int]) -> float | None:
    """When the workers began on the backlog: the earliest claim of an outbox row of ``ids`` (a claim moves the
    row's ``available_at`` to the end of its lease, ``PARAFE_JOB_LEASE_SECONDS`` after the claim)."""
    import sqlalchemy as sa

    from parafe.config import workflow_settings
    from parafe.db.models import OutboxItem

    lease = workflow_settings().lease_seconds
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(OutboxItem.document_id, OutboxItem.available_at).where(
                OutboxItem.attempts >= 1, OutboxItem.done_at.is_not(None))).all()
    finally:
        engine.dispose()
    claims = [_epoch(at) - lease for document_id, at in rows if document_id in ids]
    return min(claims) if claims else None


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _profile_summary(raw: Path, top: int = 25) -> None:
    """Top functions of py-spy's collapsed stacks (``frame;frame;… count``): self and inclusive samples."""
    self_count: collections.Counter[str] = collections.Counter()
    total_count: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += count
        self_count[frames[-1]] += count
        for frame in set(frames):
            total_count[frame] += count
    print(f"profile: {samples} samples ({raw})", file=sys.stderr)
    print("  self:", file=sys.stderr)
    for frame, count in self_count.most_common(top):
        print(f"  {100 * count / samples:5.1f}%  {frame}", file=sys.stderr)
    print("  inclusive (parafe functions):", file=sys.stderr)
    shown = 0
    for frame, count in total_count.most_common():
        if "parafe/" in frame and "bench/" not in frame:
            print(f"  {100 * count / samples:5.1f}%  {frame}", file=sys.stderr)
            shown += 1
            if shown >= top:
                break


def _pinned_to(index: int) -> Callable[[], None]:
    """``preexec_fn`` of worker ``index`` under ``--pin-workers``: the process (and the threads it starts) runs on
    core ``index`` only (modulo the cores this process may use)."""
    cores = sorted(os.sched_getaffinity(0))
    core = cores[index % len(cores)]

    def pin() -> None:
        os.sched_setaffinity(0, {core})

    return pin


def run_once(args: argparse.Namespace, workers: int, pdf: bytes) -> Run:
    home = Path(tempfile.mkdtemp(prefix="parafe-e2e-"))
    dbname = None
    if args.postgres:
        url, dbname = create_pg_database(args.postgres)
    else:
        url = f"sqlite:///{home / 'parafe.db'}"
    procs: list[subprocess.Popen[bytes]] = []
    spy: subprocess.Popen[bytes] | None = None
    log = open(home / "server.log", "wb")  # noqa: SIM115
    cpu = MachineCpu().__enter__()
    try:
        extra = {"PARAFE_WORKER_IN_PROCESS": "false"} if workers > 0 else {}
        env = _env(home, url, extra)
        subprocess.run([sys.executable, "-m", "parafe", "init"], cwd=str(ROOT), env=env, check=True,
                       stdout=subprocess.DEVNULL)
        port = free_port()
        cmd = [sys.executable, "-m", "parafe", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning"]
        if args.server_processes:
            cmd += ["--workers", str(args.server_processes)]
        procs.append(subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT))

        def start_workers() -> None:
            for index in range(workers):
                pin = _pinned_to(index) if args.pin_workers else None
                procs.append(subprocess.Popen([sys.executable, "-m", "parafe", "worker"], cwd=str(ROOT), env=env,
                                              stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin))

        if not args.backlog:
            start_workers()
        _wait_up(port, home / "pki" / "ca.pem", procs[0])
        ssl_ctx = ssl.create_default_context(cafile=str(home / "pki" / "ca.pem"))
        ssl_ctx.check_hostname = False
        ssl_ctx.load_cert_chain(str(home / "demo" / f"{AGENT}.pem"), str(home / "demo" / f"{AGENT}.key"))
        # warm-up: a few documents through the whole circuit (imports, the server key, today's label)
        warm = [_multipart(f"warm-{i}.pdf", pdf + f"%warm-{i}\n".encode()) for i in range(4)]
        warm_sent, _, _, _ = _deposit_all(port, ssl_ctx, warm, min(args.clients, 4))
        if not args.backlog:
            _signed_times(url, set(warm_sent), 120)
        bodies = [_multipart(f"e2e-{i}.pdf", pdf + f"%{uuid.uuid4().hex}\n".encode()) for i in range(args.docs)]
        def start_profile() -> subprocess.Popen[bytes] | None:
            if not args.profile:
                return None
            target = procs[-1].pid if workers else procs[0].pid
            profiler = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                                         "-o", args.profile, "-r", "50", "--subprocesses", "--nonblocking",
                                         "-p", str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            return profiler

        if not args.backlog:
            spy = start_profile()
        sent, errors, first, last_answer = _deposit_all(port, ssl_ctx, bodies, args.clients)
        if args.backlog:  # every document waits; the workers start now and the clock starts at their first claim
            start_workers()
            spy = start_profile()
            _signed_times(url, set(warm_sent), 120)
            signed = _signed_times(url, set(sent), args.timeout)
            deposit_rate = len(sent) / (last_answer - first)
            # not the first « Signé »: a batch's documents are signed together, so that clock would start after
            # the first batch of every executor thread (more of them with more workers: a biased ratio)
            claimed = _processing_start(url, set(sent))
            first = claimed if claimed is not None else min(signed.values(), default=time.time())
            sent = dict.fromkeys(sent, first)
            last_answer = first
        else:
            signed = _signed_times(url, set(sent), args.timeout)
            deposit_rate = len(sent) / (last_answer - first)
        missing = len(sent) - len(signed)
        if missing:
            print(f"  {missing} documents not signed within {args.timeout:.0f} s", file=sys.stderr)
        latencies = [signed[i] - sent[i] for i in signed]
        end = max(signed.values()) if signed else time.time()
        return Run(rate=len(signed) / (end - first), p50=_quantile(latencies, 0.5), p99=_quantile(latencies, 0.99),
                   deposit_rate=deposit_rate, lag=end - last_answer, errors=errors + missing,
                   cores=cpu.busy(first, end))
    finally:
        cpu.__exit__()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            _profile_summary(Path(args.profile))
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
        if args.keep:
            print(f"  home kept: {home}", file=sys.stderr)
        else:
            delete_at_exit(home)  # at the end: the next configuration must not pay for this clean-up
        if dbname and args.postgres:
            drop_pg_database(args.postgres, dbname)


def measure(args: argparse.Namespace, workers: int, pdf: bytes) -> Run:
    runs = [run_once(args, workers, pdf) for _ in range(args.runs)]
    backend = "postgresql" if args.postgres else "sqlite"
    median = Run(statistics.median(r.rate for r in runs), statistics.median(r.p50 for r in runs),
                 statistics.median(r.p99 for r in runs), statistics.median(r.deposit_rate for r in runs),
                 statistics.median(r.lag for r in runs), sum(r.errors for r in runs),
                 statistics.median(r.cores for r in runs))
    detail = " ".join(f"{r.rate:.1f}/s,p99={r.p99:.1f}s" for r in runs)
    errors = f" errors={median.errors}" if median.errors else ""
    print(f"e2e_workflow backend={backend} workers={workers or 'embedded'}{' backlog' if args.backlog else ''} "
          f"docs={args.docs} clients={args.clients} "
          f"rate={median.rate:.1f}/s p50={median.p50:.2f}s p99={median.p99:.2f}s deposit={median.deposit_rate:.1f}/s "
          f"lag={median.lag:.2f}s cores_busy={median.cores:.2f}/{os.cpu_count()} "
          f"load={os.getloadavg()[0]:.1f}{errors} (median of {args.runs}: {detail})", flush=True)
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--pages", type=int, default=2, help="pages per PDF")
    parser.add_argument("--postgres", nargs="?", const=os.environ.get("PARAFE_TEST_POSTGRES_URL", DEFAULT_PG),
                        default=None, help=f"PostgreSQL admin URL (default {DEFAULT_PG})")
    parser.add_argument("--workers", type=int, default=0,
                        help="job worker processes (parafe worker); 0: the embedded worker of parafe serve")
    parser.add_argument("--compare-workers", action="store_true", help="1 then 2 worker processes, and the ratio")
    parser.add_argument("--backlog", action="store_true",
                        help="with --workers/--compare-workers: deposit everything first, then start the workers "
                             "(the workflow's own rate, whatever the deposits manage)")
    parser.add_argument("--server-processes", type=int, default=0, help="parafe serve --workers (default: serve's)")
    parser.add_argument("--pin-workers", action="store_true",
                        help="worker i runs on core i only: 1 worker on 1 core against 2 workers on 2 cores (how the "
                             "workflow scales with the cores given to its workers; the server, the database and the "
                             "kernel's writers still run on any core)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--profile", default=None, help="py-spy collapsed stacks of the server (or last worker)")
    parser.add_argument("--keep", action="store_true", help="keep the home (server.log)")
    args = parser.parse_args()
    if args.postgres:
        args.postgres = args.postgres.replace("postgresql://", "postgresql+psycopg://")
    pdf = pdf_of_pages(args.pages)
    if args.backlog and not (args.workers or args.compare_workers):
        parser.error("--backlog needs --workers N or --compare-workers")
    settle_file_system()  # files deleted by a run just before this one slow file creation down (benchlib)
    if args.compare_workers:
        one = measure(args, 1, pdf)
        two = measure(args, 2, pdf)
        cores = os.cpu_count() or 1
        ceiling = f"{cores / one.cores:.2f}" if one.cores else "?"
        print(f"e2e_workflow backend={'postgresql' if args.postgres else 'sqlite'} ratio_2_vs_1="
              f"{two.rate / one.rate:.2f} (1 worker {one.rate:.1f}/s keeping {one.cores:.2f} of {cores} cores busy, "
              f"2 workers {two.rate:.1f}/s keeping {two.cores:.2f}; ceiling on this machine {cores}/{one.cores:.2f} = "
              f"{ceiling})", flush=True)
        return 0
    measure(args, args.workers, pdf)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
