"""Soak: the chaos scenario's mixed load (:class:`parafe.devtools.chaos_load.Load`: REST, SOAP and WebDAV deposits,
``serveur``, ``bureautique`` with visa and signature through the portal's API, ``otp`` with its code, OSS
``signServerDoc``, downloads, deletes) on ONE node, without faults, for a given time, recording every minute:

- the RSS of all the server's processes (``parafe serve`` and its children: the forked server processes and
  their in-process job worker), from ``/proc``;
- their open file descriptors;
- the p99 of the answered requests' durations in that minute.

Then one summary line: growth of RSS and descriptors after the warm-up (median of the first five minutes after
the warm-up against the median of the last five; the warm-up is the first ``--warmup`` minutes, 2 by
default: caches, pools and imports fill up there), in %, p99 of the first and last minute, and the errors
(requests not answered, or answered 5xx/401, and client exceptions).

Usage: .venv/bin/python bench/soak.py [--minutes 30] [--clients 8] [--postgres URL] [--workers N]
Prints one line per minute, then:
``soak minutes=30 clients=8 requests=… errors=0 rss_warm=…MB rss_end=…MB rss_growth=+x.x% fds_warm=… fds_end=…
fd_growth=+x.x% p99_first=…ms p99_last=…ms``
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import create_pg_database, drop_pg_database, free_port  # noqa: E402


def tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def rss_and_fds(pid: int) -> tuple[int, int]:
    rss = fds = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            continue
    return rss, fds


def p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


class SingleNode:
    """What :class:`parafe.devtools.chaos_load.Load` needs of a cluster: one node, its home, a context, ``say``."""

    def __init__(self, home: Path, url: str, database_url: str) -> None:
        from parafe.config import Settings
        from parafe.context import AppContext
        from parafe.devtools.chaos_cluster import Proc

        self.template = home
        self.nodes = [Proc("serve", [], {}, home / "serve.log", url=url)]
        self.ctx = AppContext.from_settings(Settings(home=home, database_url=database_url))

    def say(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes of warm-up (not in the growth)")
    parser.add_argument("--workers", type=int, default=None, help="server processes (default: one per core)")
    parser.add_argument("--postgres", default=os.environ.get("PARAFE_TEST_POSTGRES_URL"),
                        help="PostgreSQL admin URL (a database is created, then dropped); SQLite without it")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()

    from parafe.devtools.chaos_cluster import PORTAL_SECRET
    from parafe.devtools.chaos_load import Load
    from parafe.devtools.chaos_report import Report

    work = Path(tempfile.mkdtemp(prefix="parafe-soak-"))
    home = work / "home"
    dbname = None
    if args.postgres:
        admin = args.postgres.replace("postgresql://", "postgresql+psycopg://")
        url, dbname = create_pg_database(admin)
    else:
        url = f"sqlite:///{home / 'parafe.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFE_")}
    env.update(PARAFE_HOME=str(home), PARAFE_DATABASE_URL=url, PARAFE_PORTAL_SECRET=PORTAL_SECRET,
               PYTHONUNBUFFERED="1")
    if args.workers is not None:
        env["PARAFE_WORKERS"] = str(args.workers)
    home.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "parafe", "init"], env=env, check=True, capture_output=True)
    node: SingleNode | None = None
    server: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        with open(work / "serve.log", "wb") as log:
            server = subprocess.Popen([sys.executable, "-m", "parafe", "serve", "--port", str(port), "--log-level",
                                       "warning"], env=env, stdout=log, stderr=subprocess.STDOUT)
        node = SingleNode(home, f"https://127.0.0.1:{port}", url)
        from parafe.services.demo import ensure_oss_demo

        ensure_oss_demo(node.ctx)
        _wait(node, server)
        report = Report()
        load = Load(node, report, random.Random(args.seed))
        threads = [threading.Thread(target=load.run_client, daemon=True) for _ in range(args.clients)]
        start = time.monotonic()
        for thread in threads:
            thread.start()
        samples: list[tuple[float, int, int, float, int]] = []  # minute, rss, fds, p99, requests
        minute = 0
        while time.monotonic() - start < args.minutes * 60:
            minute += 1
            target = start + min(minute * 60, args.minutes * 60)
            time.sleep(max(0.0, target - time.monotonic()))
            window_start = target - 60
            with load.lock:
                window = [d for t, d in load.latencies if window_start <= t < target]
            rss, fds = rss_and_fds(server.pid)
            samples.append((minute, rss, fds, p99(window), len(window)))
            print(f"minute {minute:3d} rss={rss / 2**20:7.1f}MB fds={fds:4d} p99={p99(window) * 1000:7.0f}ms "
                  f"requests={len(window)} errors={report.request_errors}", file=sys.stderr, flush=True)
        load.stop.set()
        for thread in threads:
            thread.join(timeout=120)
        # Growth compares the median of the first and of the last ``span`` minutes after the warm-up: one
        # sample is an instant (descriptors count the connections in flight at that second), a median is a level.
        steady = [s for s in samples if s[0] > args.warmup] or samples
        span = max(1, min(5, len(steady) // 3))
        warm_rss, end_rss = median(s[1] for s in steady[:span]), median(s[1] for s in steady[-span:])
        warm_fds, end_fds = median(s[2] for s in steady[:span]), median(s[2] for s in steady[-span:])
        last = samples[-1]
        growth = (end_rss - warm_rss) / warm_rss * 100 if warm_rss else 0.0
        fd_growth = (end_fds - warm_fds) / warm_fds * 100 if warm_fds else 0.0
        print(f"soak minutes={args.minutes:g} clients={args.clients} requests={report.requests} "
              f"errors={report.request_errors} rss_warm={warm_rss / 2**20:.1f}MB rss_end={end_rss / 2**20:.1f}MB "
              f"rss_growth={growth:+.1f}% fds_warm={warm_fds:g} fds_end={end_fds:g} fd_growth={fd_growth:+.1f}% "
              f"(medians of the first and last {span} min after warm-up) "
              f"p99_first={samples[0][3] * 1000:.0f}ms p99_last={last[3] * 1000:.0f}ms "
              f"(warm-up: {args.warmup:g} min; deposits {sum(report.acked.values())}, visas {report.visas}, "
              f"signatures {report.signatures_by_api}, OTP {report.otp_signatures})", flush=True)
        return 0 if report.request_errors == 0 else 1
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if node is not None:
            node.ctx.close()
        if dbname and args.postgres:
            drop_pg_database(args.postgres.replace("postgresql://", "postgresql+psycopg://"), dbname)
        shutil.rmtree(work, ignore_errors=True)


def _wait(node: Any, server: subprocess.Popen[bytes]) -> None:
    import ssl

    import httpx

    context = ssl.create_default_context(cafile=str(node.template / "pki" / "ca.pem"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("le serveur s'est arrêté au démarrage")
        try:
            if httpx.get(f"{node.nodes[0].url}/healthz", verify=context, timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("le serveur n'a pas démarré")


if __name__ == "__main__":
    raise SystemExit(main())
