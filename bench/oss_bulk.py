"""OSS mass signing over HTTP: ``signServerDoc`` requests per second over HTTPS (mTLS) with 8 concurrent clients on
a 5-page PDF, and the ratio to the Signature engine's in-process bulk rate measured in the same run.

What runs: a fresh home (SQLite, files, dev PKI, the demo OSS workflow ``oss-demo``), a real ``parafe serve`` over
TLS (one server process per core, its default; the server CPU figure counts them all), and 8 client threads (one
keep-alive HTTPS connection each, the demo agent's certificate) posting the same 5-page PDF to
``/oss/signServerDoc`` (synchronous: the signed PDF comes back in the body; each request also stores the original
and the signed file and writes its database row). The in-process reference is
:class:`parafe.signing.bulk.BulkPdfSigner` with the same key, level (B-B) and pictogram, in this process, one
thread. Every response is checked (200, ``X-FAST-document-id``, a PDF larger than the input). The server and the
clients share the machine's cores; the figure is the median of ``--runs`` runs of ``--seconds`` each.

Usage: ``.venv/bin/python bench/oss_bulk.py [--seconds 10] [--runs 3] [--clients 8]``
Prints one line: ``oss_bulk …: HTTPS X req/s (median), in-process bulk Y/s, ratio X/Y``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import cpu_seconds, free_port, pdf_of_pages  # noqa: E402  (bench/ is the script's folder)

AGENT = "agent@demo.parafe.test"



def setup_home(home: Path) -> object:
    os.environ["PARAFE_HOME"] = str(home)
    os.environ.pop("PARAFE_DATABASE_URL", None)
    from parafe.cli import initialise
    from parafe.config import get_settings, reset_settings
    from parafe.context import AppContext
    from parafe.services.demo import ensure_oss_demo

    reset_settings()
    initialise(verbose=False)
    ctx = AppContext.from_settings(get_settings())
    ensure_oss_demo(ctx)
    return ctx


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFE_")}
    env["PARAFE_HOME"] = str(home)
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([sys.executable, "-m", "parafe", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--log-level", "warning"], cwd=str(ROOT), env=env, stdout=log, stderr=log)
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {(home / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", verify=str(home / "pki" / "ca.pem"), timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not start")



def http_rate(url: str, home: Path, pdf: bytes, clients: int, seconds: float, server_pid: int,
              ) -> tuple[float, float]:
    """Successful signServerDoc responses per second with ``clients`` concurrent keep-alive connections, and
    the server process's CPU milliseconds per request."""
    import ssl

    import httpx

    context = ssl.create_default_context(cafile=str(home / "pki" / "ca.pem"))
    context.load_cert_chain(str(home / "demo" / f"{AGENT}.pem"), str(home / "demo" / f"{AGENT}.key"))
    start_gate = threading.Barrier(clients + 1)
    stop = threading.Event()
    counts = [0] * clients
    errors: list[str] = []

    def worker(index: int) -> None:
        with httpx.Client(base_url=url, verify=context, timeout=120) as client:
            def one() -> bool:
                r = client.post("/oss/signServerDoc", data={"workflowId": "oss-demo", "pictogramme": "2,3,-1"},
                                files={"dataFile": ("arrete.pdf", pdf, "application/pdf")})
                ok = (r.status_code == 200 and r.headers.get("X-FAST-document-id", "").isdigit()
                      and r.content.startswith(b"%PDF") and len(r.content) > len(pdf))
                if not ok:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                return ok

            one()  # warm-up (TLS handshake, caches)
            start_gate.wait()
            while not stop.is_set():
                if one():
                    counts[index] += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    began, cpu_before, done_before = time.perf_counter(), cpu_seconds(server_pid), sum(counts)
    time.sleep(seconds)
    total_at_stop, cpu_after = sum(counts), cpu_seconds(server_pid)
    elapsed = time.perf_counter() - began
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, first: {errors[0]}")
    done = max(total_at_stop - done_before, 1)
    return (total_at_stop - done_before) / elapsed, 1000 * (cpu_after - cpu_before) / done


def bulk_rate(ctx: object, pdf: bytes, seconds: float) -> float:
    """In-process signatures per second of the engine's bulk signer with the workflow's key and pictogram."""
    from sqlalchemy import select

    from parafe.db.models import OssWorkflow
    from parafe.services.oss import signing as oss_signing

    with ctx.db.read() as session:  # type: ignore[attr-defined]
        workflow = session.scalar(select(OssWorkflow).where(OssWorkflow.key == "oss-demo"))
        session.expunge(workflow)
    signer = oss_signing.workflow_signer(ctx, workflow.certificate_p12, workflow.certificate_password)  # type: ignore[arg-type]
    default = oss_signing.workflow_placement(workflow.pictogram)
    stamp = oss_signing.stamp_for(oss_signing.parse_pictogramme("2,3,-1", default))
    from parafe.signing.bulk import BulkPdfSigner

    bulk = BulkPdfSigner(signer, stamp=stamp, reason="Signature serveur (OSS)")
    bulk.sign_one(pdf)
    n = 0
    began = time.perf_counter()
    while True:
        bulk.sign_one(pdf)
        n += 1
        elapsed = time.perf_counter() - began
        if elapsed >= seconds and n >= 5:
            assert bulk.fallback_count == 0, "the bulk path fell back to pyHanko"
            return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="parafe-oss-bench-"))
    home = tmp / "home"
    ctx = setup_home(home)
    pdf = pdf_of_pages(5)
    process, url = start_server(home)
    try:
        http_rates, bulk_rates, cpu_ms = [], [], []
        for _ in range(args.runs):
            rate, cpu = http_rate(url, home, pdf, args.clients, args.seconds, process.pid)
            http_rates.append(rate)
            cpu_ms.append(cpu)
            bulk_rates.append(bulk_rate(ctx, pdf, args.seconds / 2))
    finally:
        process.terminate()
        process.wait(timeout=30)
        ctx.close()  # type: ignore[attr-defined]
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    http, bulk = statistics.median(http_rates), statistics.median(bulk_rates)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"oss_bulk (5-page PDF, B-B, RSA-2048, {args.clients} HTTPS clients, {cores} cores shared by server and "
          f"clients, median of {args.runs} x {args.seconds:.0f}s): signServerDoc {http:.1f} req/s "
          f"(runs {', '.join(f'{r:.1f}' for r in http_rates)}; server CPU {statistics.median(cpu_ms):.1f} ms/request); "
          f"in-process BulkPdfSigner {bulk:.1f}/s (1 thread, {1000 / bulk:.1f} ms/signature); "
          f"ratio HTTPS/in-process {http / bulk:.2f}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
