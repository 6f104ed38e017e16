"""OSS mass signing over HTTP: ``signServerDoc`` requests per second over HTTPS (mTLS) with 8 concurrent clients on
a 5-page PDF, and the ratio to the Signature engine's in-process bulk rate measured in the same run.

What runs: a fresh home (SQLite, files, dev PKI, the demo OSS workflow ``oss-demo``), a real ``parafe serve`` over
TLS (one server process per core, its default; the server CPU figure counts them all), and 8 client threads (one
keep-alive HTTPS connection each with ``http.client``, the demo agent's certificate) posting a 5-page PDF (made
distinct per request by a trailing comment, as an OSS client signs different documents) to
``/oss/signServerDoc`` (synchronous: the signed PDF comes back in the body; each request also stores the original
and the signed file and writes its database row). The anchor (issue 17) is ``openssl speed -seconds 3 rsa2048``'s
RSA-2048 sign/s on one core, measured in the same run (after the HTTPS runs, so that it sees the same machine
load): the figure is printed as a percentage of it, with the p99 latency of the requests. A second reference is
:class:`parafe.signing.bulk.BulkPdfSigner` with the same key, level (B-B) and pictogram, in this process, one
thread. Every response is checked (200, ``X-FAST-document-id``, a PDF larger than the input). The server and the
clients share the machine's cores; the figure is the median of ``--runs`` runs of ``--seconds`` each.

Usage: ``.venv/bin/python bench/oss_bulk.py [--seconds 10] [--runs 3] [--clients 8] [--warm-store]``
Prints one line: ``oss_bulk …: signServerDoc X req/s (median) p99 … ms … = N % of openssl speed rsa2048 (Z sign/s,
1 core); in-process bulk Y/s …``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
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
from benchlib import cpu_seconds, free_port, pdf_of_pages, settle_file_system  # noqa: E402  (bench/ is the script's folder)

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



def warm_store(root: Path) -> None:
    """Every folder of the store's two-level layout (``ab/cd/``), made before the clock starts."""
    began = time.perf_counter()
    for first in range(256):
        level1 = root / f"{first:02x}"
        level1.mkdir(exist_ok=True)
        for second in range(256):
            (level1 / f"{second:02x}").mkdir(exist_ok=True)
    print(f"  store folders made in {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)


def openssl_rsa2048_signs() -> float:
    """RSA-2048 signatures per second of ``openssl speed`` on one core (one process), 3 seconds."""
    out = subprocess.run(["openssl", "speed", "-seconds", "3", "rsa2048"], capture_output=True, text=True,
                         check=True).stdout
    match = re.search(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)", out, re.MULTILINE)
    if match is None:
        raise SystemExit(f"unexpected openssl speed output: {out[-500:]}")
    return float(match.group(1))


def http_rate(url: str, home: Path, pdf: bytes, clients: int, seconds: float, server_pid: int,
              ) -> tuple[float, float, list[float]]:
    """Successful signServerDoc responses per second with ``clients`` concurrent keep-alive connections, the
    server process's CPU milliseconds per request and the latencies (ms) of the requests in the window."""
    import http.client
    import ssl
    import uuid
    from urllib.parse import urlsplit

    context = ssl.create_default_context(cafile=str(home / "pki" / "ca.pem"))
    context.load_cert_chain(str(home / "demo" / f"{AGENT}.pem"), str(home / "demo" / f"{AGENT}.key"))
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 443
    boundary = uuid.uuid4().hex
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (("workflowId", "oss-demo"), ("pictogramme", "2,3,-1"))) + (
        f'--{boundary}\r\nContent-Disposition: form-data; name="dataFile"; filename="arrete.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n").encode() + pdf
    tail = f"\r\n--{boundary}--\r\n".encode()
    run_tag = uuid.uuid4().hex[:8]
    sequence = itertools.count()

    def body() -> bytes:
        # every request signs a document of its own, as an OSS client does (a comment after %%EOF): the same
        # bytes every time made each upload a duplicate whose spool file is deleted, and on these machines' ext4
        # without a journal each deleted inode makes the next file creations slower for a minute or more
        return head + f"%{run_tag}-{next(sequence):012d}\n".encode() + tail

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(len(body()))}
    start_gate = threading.Barrier(clients + 1)
    stop = threading.Event()
    counts = [0] * clients
    errors: list[str] = []
    latencies: list[float] = []
    window = [False]

    def worker(index: int) -> None:
        # http.client, not httpx: the load generator shares the cores with the server and must cost little
        # (httpx, used before, spent more CPU per request in the 8 client threads than the server did)
        conn = http.client.HTTPSConnection(host, port, context=context, timeout=120)
        try:
            def one() -> bool:
                conn.request("POST", "/oss/signServerDoc", body=body(), headers=headers)
                r = conn.getresponse()
                content = r.read()
                ok = (r.status == 200 and (r.getheader("X-FAST-document-id") or "").isdigit()
                      and content.startswith(b"%PDF") and len(content) > len(pdf))
                if not ok:
                    errors.append(f"{r.status} {content[:200]!r}")
                return ok

            one()  # warm-up (TLS handshake, caches)
            start_gate.wait()
            while not stop.is_set():
                began = time.perf_counter()
                ok = one()
                if ok:
                    counts[index] += 1
                if window[0]:
                    latencies.append(1000 * (time.perf_counter() - began))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    window[0] = True
    began, cpu_before, done_before = time.perf_counter(), cpu_seconds(server_pid), sum(counts)
    time.sleep(seconds)
    total_at_stop, cpu_after = sum(counts), cpu_seconds(server_pid)
    elapsed = time.perf_counter() - began
    window[0] = False
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, first: {errors[0]}")
    done = max(total_at_stop - done_before, 1)
    return (total_at_stop - done_before) / elapsed, 1000 * (cpu_after - cpu_before) / done, latencies


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
    parser.add_argument("--warm-store", action="store_true",
                        help="make the blob store's 65,536 folders first, as in a store that has kept a few hundred "
                             "thousand files (a fresh one makes a folder for most new files: a mkdir, ~0.26 ms of "
                             "kernel CPU on these machines)")
    args = parser.parse_args()
    create_before = settle_file_system()
    tmp = Path(tempfile.mkdtemp(prefix="parafe-oss-bench-"))
    home = tmp / "home"
    ctx = setup_home(home)
    if args.warm_store:
        warm_store(Path(ctx.store.root))  # type: ignore[attr-defined]
    pdf = pdf_of_pages(5)
    process, url = start_server(home)
    try:
        http_rates, bulk_rates, cpu_ms, p99s, anchors = [], [], [], [], []
        for _ in range(args.runs):
            rate, cpu, latencies = http_rate(url, home, pdf, args.clients, args.seconds, process.pid)
            http_rates.append(rate)
            cpu_ms.append(cpu)
            p99s.append(statistics.quantiles(latencies, n=100, method="inclusive")[98])
            bulk_rates.append(bulk_rate(ctx, pdf, args.seconds / 2))
            anchors.append(openssl_rsa2048_signs())
    finally:
        process.terminate()
        process.wait(timeout=30)
        ctx.close()  # type: ignore[attr-defined]
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    http, bulk = statistics.median(http_rates), statistics.median(bulk_rates)
    anchor = statistics.median(anchors)
    ratios = [r / a for r, a in zip(http_rates, anchors, strict=True)]
    warmed = "; store folders made first" if args.warm_store else ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"oss_bulk (5-page PDF, B-B, RSA-2048, {args.clients} HTTPS clients, {cores} cores shared by server and "
          f"clients, median of {args.runs} x {args.seconds:.0f}s): signServerDoc {http:.1f} req/s "
          f"p99 {statistics.median(p99s):.0f} ms = {100 * statistics.median(ratios):.1f} % of openssl speed rsa2048 "
          f"({anchor:.0f} sign/s, 1 core; runs {', '.join(f'{100 * r:.1f}' for r in ratios)} %) "
          f"(runs {', '.join(f'{r:.1f}' for r in http_rates)} req/s; "
          f"server CPU {statistics.median(cpu_ms):.1f} ms/request); "
          f"in-process BulkPdfSigner {bulk:.1f}/s (1 thread, {1000 / bulk:.1f} ms/signature); "
          f"ratio HTTPS/in-process {http / bulk:.2f}; load average {os.getloadavg()[0]:.1f}; "
          f"file creation {create_before:.0f} µs before the runs{warmed})")


if __name__ == "__main__":
    main()
