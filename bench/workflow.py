"""Documents per second through the ``serveur`` circuit (deposit → server signature → filed), PostgreSQL,
with 1 and 2 ``parafe worker`` processes (PostgresHuey queue, 2 threads each).

Two figures per worker count, each the median of ``--runs`` runs on a fresh database:
- ``workflow``: N documents already deposited are released at once (their ``workflow.start`` rows made due at
  T0, after the workers are up); time from T0 to the last ``Classé`` entry;
- ``e2e``: the workers run while one process deposits N documents through the deposit service; time from the
  first deposit to the last ``Classé`` entry (deposit → signed → filed).

Usage: .venv/bin/python bench/workflow.py [--n 200] [--runs 3] [--postgres URL]
Prints: ``workflow backend=postgresql workers=K workflow=…/s e2e=…/s (median of R, N docs)``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import create_pg_database, drop_pg_database  # noqa: E402  (bench/ is the script's folder)


def _pdf(i: int) -> bytes:
    from reportlab.pdfgen import canvas

    path = Path(tempfile.mkstemp(suffix=".pdf")[1])
    c = canvas.Canvas(str(path))
    c.drawString(72, 760, f"Parafe bench document {i}")
    c.showPage()
    c.save()
    data = path.read_bytes()
    path.unlink()
    return data



def _env(home: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFE_")}
    env.update(PARAFE_HOME=str(home), PARAFE_DATABASE_URL=url, PARAFE_QUEUE="postgres", PARAFE_WORKER_THREADS="2",
               PARAFE_DISPATCH_INTERVAL="0.1")
    return env


def _context(env: dict[str, str]) -> Any:
    for key in [k for k in os.environ if k.startswith("PARAFE_")]:
        del os.environ[key]
    os.environ.update({k: v for k, v in env.items() if k.startswith("PARAFE_")})
    from parafe.cli import initialise
    from parafe.config import get_settings, reset_settings
    from parafe.context import AppContext

    reset_settings()
    initialise(verbose=False)
    return AppContext.from_settings(get_settings())


def _deposit(ctx: Any, tmp: Path, i: int, data: bytes) -> int:
    from parafe.services.access.auth import principal_for_email
    from parafe.services.demo import AGENT
    from parafe.services.documents.deposit import DepositRequest, Upload, deposit

    path = tmp / f"d{i}.pdf"
    path.write_bytes(data)
    upload = Upload(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), filename=f"doc-{i}.pdf")
    principal = principal_for_email(ctx, AGENT)
    return deposit(ctx, principal, DepositRequest(siren="123456789", circuit="serveur", upload=upload)).document_id


def _workers(env: dict[str, str], count: int, log: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for _ in range(count):
        with open(log, "ab") as fh:
            procs.append(subprocess.Popen([sys.executable, "-m", "parafe", "worker"], cwd=str(ROOT), env=env,
                                          stdout=fh, stderr=subprocess.STDOUT))
    return procs


def _wait_filed(ctx: Any, n: int, timeout: float = 600) -> Any:
    from sqlalchemy import func, select

    from parafe.db.models import Document, HistoryEntry
    from parafe.domain.states import State

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with ctx.db.read() as s:
            filed = s.scalar(select(func.count()).select_from(Document).where(Document.state == State.FILED.value))
            if filed == n:
                return s.scalar(select(func.max(HistoryEntry.created_at)).where(
                    HistoryEntry.state == State.FILED.value))
        time.sleep(0.2)
    raise RuntimeError("documents not filed in time")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def _aware(moment: Any) -> Any:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_once(admin: str, workers: int, n: int, mode: str, docs: list[bytes]) -> float:
    from sqlalchemy import update

    from parafe.db.models import OutboxItem, utcnow

    url, name = create_pg_database(admin)
    home = Path(tempfile.mkdtemp(prefix="parafe-bench-wf-"))
    tmp = home / "in"
    env = _env(home, url)
    ctx = _context(env)
    tmp.mkdir()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        from parafe.workflow.signatures import ensure_server_key

        ensure_server_key(ctx)
        if mode == "workflow":
            for i in range(n):
                _deposit(ctx, tmp, i, docs[i])
            t0 = utcnow() + timedelta(seconds=4)
            with ctx.db.write() as s:
                s.execute(update(OutboxItem).values(available_at=t0))
            procs = _workers(env, workers, home / "worker.log")
            last = _wait_filed(ctx, n)
            return n / (_aware(last) - t0).total_seconds()
        procs = _workers(env, workers, home / "worker.log")
        time.sleep(4)  # workers up
        t0 = utcnow()
        for i in range(n):
            _deposit(ctx, tmp, i, docs[i])
        last = _wait_filed(ctx, n)
        return n / (_aware(last) - t0).total_seconds()
    finally:
        _stop(procs)
        ctx.close()
        drop_pg_database(admin, name)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--postgres", default=os.environ.get(
        "PARAFE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    admin = args.postgres.replace("postgresql+psycopg://", "postgresql://")
    docs = [_pdf(i) for i in range(args.n)]
    for workers in (int(w) for w in args.workers.split(",")):
        results: dict[str, list[float]] = {"workflow": [], "e2e": []}
        for _ in range(args.runs):
            for mode in ("workflow", "e2e"):
                results[mode].append(run_once(admin, workers, args.n, mode, docs))
        print(f"workflow backend=postgresql workers={workers} "
              f"workflow={statistics.median(results['workflow']):.1f}/s e2e={statistics.median(results['e2e']):.1f}/s "
              f"(median of {args.runs}, {args.n} docs; runs: "
              + " ".join(f"{m}={','.join(f'{v:.1f}' for v in vs)}" for m, vs in results.items()) + ")", flush=True)


if __name__ == "__main__":
    main()
