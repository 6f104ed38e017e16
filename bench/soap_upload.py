"""Uploads per second over HTTPS with client certificates, SOAP ``upload`` against REST ``upload``, same run.

One ``parafe serve`` (TLS, SQLite by default, in-process workflow worker off so that only the deposit is
measured) on a fresh home; 8 concurrent clients (the REST bench's concurrency), each with its own keep-alive
connection and the demo agent's certificate, deposit 100 KB PDFs into ``bureautique``. Envelopes and forms
are built before the clock starts. Rounds alternate REST and SOAP; each figure is the median of the rounds.

Usage: .venv/bin/python bench/soap_upload.py [--n 200] [--rounds 3] [--concurrency 8] [--postgres URL]
Prints: ``soap_upload  backend=sqlite  concurrency=8  pdf100k  soap=…/s  rest=…/s  ratio_soap_rest=…
paired_ratio=… (median of R rounds of N uploads; …)``; ``paired_ratio`` is the median of the per-round ratios
(a REST round and the SOAP round right after it), steadier than the ratio of medians on a busy machine.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from benchlib import create_pg_database, drop_pg_database, free_port, pdf_of_size  # bench/ is the script's folder

ROOT = Path(__file__).resolve().parent.parent
SIREN = "123456789"
AGENT = "agent@demo.parafe.test"
SOAP_PATH = "/parapheur-soap/soap/v1/Documents"
REST_PATH = f"/parapheur-ws/rest/v1/documents/v2/{SIREN}/bureautique/upload"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "http://sei.ws.fast.cdc.com/"



def _start(home: Path, database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFE_")}
    env.update(PARAFE_HOME=str(home), PARAFE_DATABASE_URL=database_url, PARAFE_WORKER_IN_PROCESS="false")
    subprocess.run([sys.executable, "-m", "parafe", "init"], cwd=str(ROOT), env=env, check=True, capture_output=True)
    log = open(home.parent / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen([sys.executable, "-m", "parafe", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--log-level", "warning"], cwd=str(ROOT), env=env, stdout=log, stderr=log)
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((home.parent / "server.log").read_text(errors="replace")[-3000:])
        try:
            ca = ssl.create_default_context(cafile=str(home / "pki" / "ca.pem"))
            if httpx.get(f"{url}/healthz", verify=ca, timeout=2).status_code == 200:
                return process, url
        except (httpx.HTTPError, OSError):  # not listening yet, or the PKI not created yet
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("server did not start")


def _soap_body(data: bytes, name: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENV}" '
            f'xmlns:ns1="{NS}"><SOAP-ENV:Body><ns1:upload><label>bench</label><comment></comment>'
            f"<subscriberId>{SIREN}</subscriberId><circuitId>bureautique</circuitId><dataFileVO><dataHandler>"
            f"{base64.b64encode(data).decode()}</dataHandler><filename>{name}</filename></dataFileVO></ns1:upload>"
            "</SOAP-ENV:Body></SOAP-ENV:Envelope>\n").encode()


def _round(url: str, home: Path, protocol: str, n: int, concurrency: int, base: bytes) -> float:
    """Uploads per second of one round of ``n`` deposits by ``concurrency`` clients."""
    tag = uuid.uuid4().hex[:8]
    jobs: list[list[tuple[str, bytes]]] = [[] for _ in range(concurrency)]
    for i in range(n):
        name = f"{protocol}-{tag}-{i}.pdf"
        data = base + f"%{tag}{i}\n".encode()
        jobs[i % concurrency].append((name, _soap_body(data, name) if protocol == "soap" else data))
    tls = ssl.create_default_context(cafile=str(home / "pki" / "ca.pem"))
    tls.load_cert_chain(str(home / "demo" / f"{AGENT}.pem"), str(home / "demo" / f"{AGENT}.key"))
    clients = [httpx.Client(base_url=url, verify=tls, timeout=120) for _ in range(concurrency)]
    for client in clients:  # TLS handshakes before the clock starts
        client.get("/healthz")
    errors: list[str] = []
    start_gate = threading.Barrier(concurrency + 1)

    def work(client: httpx.Client, items: list[tuple[str, bytes]]) -> None:
        start_gate.wait()
        for name, payload in items:
            if protocol == "soap":
                r = client.post(SOAP_PATH, content=payload, headers={"Content-Type": "text/xml; charset=utf-8"})
                ok = r.status_code == 200 and b"<return>" in r.content
            else:
                r = client.post(REST_PATH, files={"content": (name, payload, "application/pdf")},
                                data={"label": "bench"})
                ok = r.status_code == 200 and r.text.strip().isdigit()
            if not ok:
                errors.append(f"{protocol} {r.status_code} {r.text[:300]}")

    threads = [threading.Thread(target=work, args=(c, items)) for c, items in zip(clients, jobs, strict=True)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t0
    for client in clients:
        client.close()
    if errors:
        raise RuntimeError(f"{len(errors)} failed uploads, first: {errors[0]}")
    return n / elapsed



def run(backend: str, n: int, rounds: int, concurrency: int, pg_url: str | None) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="parafe-soap-bench-"))
    home = workdir / "home"
    dbname = None
    if backend == "sqlite":
        database_url = f"sqlite:///{home / 'parafe.db'}"
    else:
        assert pg_url
        database_url, dbname = create_pg_database(pg_url)
    process, url = _start(home, database_url)
    try:
        base = pdf_of_size(100 * 1024, "soap")
        _round(url, home, "rest", concurrency, concurrency, base)  # warm-up, both paths
        _round(url, home, "soap", concurrency, concurrency, base)
        rates: dict[str, list[float]] = {"rest": [], "soap": []}
        for _ in range(rounds):
            for protocol in ("rest", "soap"):
                rates[protocol].append(_round(url, home, protocol, n, concurrency, base))
        soap, rest = statistics.median(rates["soap"]), statistics.median(rates["rest"])
        paired = statistics.median(s / r for s, r in zip(rates["soap"], rates["rest"], strict=True))
        return (f"soap_upload  backend={backend}  concurrency={concurrency}  pdf100k  soap={soap:.1f}/s  "
                f"rest={rest:.1f}/s  ratio_soap_rest={soap / rest:.2f}  paired_ratio={paired:.2f}  "
                f"(median of {rounds} rounds of {n} uploads; "
                f"soap rounds {', '.join(f'{r:.1f}' for r in rates['soap'])}; "
                f"rest rounds {', '.join(f'{r:.1f}' for r in rates['rest'])})")
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)
        if dbname and pg_url:
            drop_pg_database(pg_url, dbname)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200, help="uploads per round and protocol")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres", default=os.environ.get(
        "PARAFE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    pg = args.postgres.replace("postgresql://", "postgresql+psycopg://") if args.postgres else None
    print(run(args.backend, args.n, args.rounds, args.concurrency, pg), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
