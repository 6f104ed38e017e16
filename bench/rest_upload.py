"""REST upload throughput and latency over HTTPS with client certificates, SQLite and PostgreSQL, against the
machine's ceiling measured in the same run: a plain nginx HTTPS ``PUT`` (WebDAV module) of the same files.

One ``parafe serve`` (TLS, in-process workflow worker off so that the deposit is what is measured) per backend
on a fresh home; ``--concurrency`` client threads (default 8), each with its own keep-alive TLS connection and
the demo agent's certificate, upload 100 KB PDFs (each one distinct) to
``/parapheur-ws/rest/v1/documents/v2/123456789/bureautique/upload``. The nginx ceiling uses the same TLS
server certificate, requests (optionally) the same client certificate and writes each file to disk.
Bodies are built before the clock starts; the client runs on the same machine (loopback), so it shares the
CPUs with the server. Each figure is the median over ``--rounds`` rounds of ``--n`` uploads.

Usage: .venv/bin/python bench/rest_upload.py [--n 1000] [--rounds 3] [--concurrency 8] [--postgres URL]
                                             [--backends sqlite,postgresql] [--no-nginx]
Prints one line per target (``server_cpu``: CPU time of the server process(es) per upload, a figure that does
not depend on what else the machine runs; ``load``: the 1-minute load average when the line is printed):
  rest_upload  target=sqlite      concurrency=8  pdf100k  rate=…/s  p50=… ms  p99=… ms  server_cpu=… ms/upload …
  rest_upload  target=postgresql  …
  rest_upload  target=nginx_put   …
"""

from __future__ import annotations

import argparse
import http.client
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import cpu_seconds, create_pg_database, drop_pg_database, free_port, pdf_of_size  # noqa: E402  (bench/ is the script's folder)

SIREN = "123456789"
AGENT = "agent@demo.parafe.test"
REST_PATH = f"/parapheur-ws/rest/v1/documents/v2/{SIREN}/bureautique/upload"



@dataclass
class Target:
    name: str
    port: int
    method: str
    requests: list[tuple[str, bytes, dict[str, str]]]  # path, body, headers


@dataclass
class Result:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_ms: float = 0.0  # server process CPU time (user + system, all threads) per upload



def _ssl_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def run_load(target: Target, ctx: ssl.SSLContext, concurrency: int) -> Result:
    """Send every request of ``target`` with ``concurrency`` keep-alive connections; latency per request."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    chunks = [target.requests[i::concurrency] for i in range(concurrency)]
    barrier = threading.Barrier(concurrency + 1)

    def worker(items: list[tuple[str, bytes, dict[str, str]]]) -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", target.port, context=ctx, timeout=120)
        conn.connect()
        mine: list[float] = []
        barrier.wait()
        for path, body, headers in items:
            start = time.perf_counter()
            try:
                conn.request(target.method, path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                status = response.status
            except (http.client.HTTPException, OSError) as exc:  # the server closed the connection
                conn.close()
                conn = http.client.HTTPSConnection("127.0.0.1", target.port, context=ctx, timeout=120)
                status, payload = 0, repr(exc).encode()
            mine.append(time.perf_counter() - start)
            if status not in (200, 201, 204):
                with lock:
                    errors.append(f"{status} {payload[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        print(f"  {target.name}: {len(errors)} errors, first: {errors[0]}", file=sys.stderr)
    q = statistics.quantiles(latencies * (2 if len(latencies) < 2 else 1), n=100, method="inclusive")
    return Result(len(latencies) / elapsed, q[49] * 1000, q[98] * 1000, len(errors))


def _multipart(name: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/pdf\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(len(body))}


def _bodies(n: int, size: int, tag: str) -> list[tuple[str, bytes]]:
    base = pdf_of_size(size, tag)
    return [(f"bench-{tag}-{i}.pdf", base + f"%{tag}-{i}\n".encode()) for i in range(n)]


# --- Parafe -------------------------------------------------------------------------------------------------



def _init_home(home: Path, url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFE_")}
    env.update(PARAFE_HOME=str(home), PARAFE_DATABASE_URL=url)
    subprocess.run([sys.executable, "-m", "parafe", "init"], cwd=str(ROOT), env=env, check=True,
                   stdout=subprocess.DEVNULL)


def _serve(home: Path, url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFE_")}
    env.update(PARAFE_HOME=str(home), PARAFE_DATABASE_URL=url, PARAFE_WORKER_IN_PROCESS="false")
    # PARAFE_COMPLIANCE=false in the bench's environment measures the deposit without the recorder (issue 21)
    env.update({k: v for k, v in os.environ.items() if k.startswith("PARAFE_COMPLIANCE")})
    log = open(home / "server.log", "wb")  # noqa: SIM115
    cmd = [sys.executable, "-m", "parafe", "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level",
           "warning", "--workers", str(workers)]
    proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT)
    _wait(port, home / "pki" / "ca.pem", proc)
    return proc


def _wait(port: int, ca: Path, proc: subprocess.Popen[bytes]) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status in (200, 404):
                conn.close()
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def bench_parafe(backend: str, args: argparse.Namespace) -> tuple[Result, Path]:
    home = Path(tempfile.mkdtemp(prefix=f"parafe-restbench-{backend}-"))
    dbname = None
    if backend == "sqlite":
        url = f"sqlite:///{home / 'parafe.db'}"
    else:
        url, dbname = create_pg_database(args.postgres)
    proc = None
    try:
        _init_home(home, url)
        port = free_port()
        proc = _serve(home, url, port, args.workers)
        ctx = _ssl_context(home / "pki" / "ca.pem", home / "demo" / f"{AGENT}.pem", home / "demo" / f"{AGENT}.key")
        warm = [(REST_PATH, *_multipart(n, d)) for n, d in _bodies(50, args.size, f"{backend}-warm")]
        run_load(Target("warmup", port, "POST", warm[:1]), ctx, 1)  # creates today's label: steady state
        run_load(Target("warmup", port, "POST", warm[1:]), ctx, args.concurrency)
        results = []
        for r in range(args.rounds):
            reqs = [(REST_PATH, *_multipart(n, d)) for n, d in _bodies(args.n, args.size, f"{backend}-{r}")]
            cpu = cpu_seconds(proc.pid)
            result = run_load(Target(backend, port, "POST", reqs), ctx, args.concurrency)
            result.server_cpu_ms = (cpu_seconds(proc.pid) - cpu) * 1000 / len(reqs)
            results.append(result)
            del reqs
        return _median(results), home
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        if dbname:
            drop_pg_database(args.postgres, dbname)


# --- nginx ceiling ------------------------------------------------------------------------------------------

NGINX_CONF = """
user root;
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki}/server.pem;
        ssl_certificate_key {pki}/server.key;
        ssl_client_certificate {pki}/ca.pem;
        ssl_verify_client optional;
        client_max_body_size 200m;
        client_body_buffer_size 256k;
        keepalive_requests 100000;
        location /upload/ {{
            root {prefix}/www;
            dav_methods PUT;
            create_full_put_path on;
        }}
        location = /healthz {{ return 200 "ok"; }}
    }}
}}
"""


def bench_nginx(args: argparse.Namespace) -> Result | None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        print("  nginx not installed (apt-get install nginx): ceiling skipped", file=sys.stderr)
        return None
    prefix = Path(tempfile.mkdtemp(prefix="parafe-nginx-"))
    pki_home = Path(tempfile.mkdtemp(prefix="parafe-nginx-pki-"))
    proc = None
    try:
        from parafe.security import pki_dev

        pki_dev.init_dev_pki(pki_home, [(AGENT, "Alice Agent")])
        (prefix / "www" / "upload").mkdir(parents=True)
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, pki=pki_home / "pki"))
        proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        _wait(port, pki_home / "pki" / "ca.pem", proc)
        ctx = _ssl_context(pki_home / "pki" / "ca.pem", pki_home / "demo" / f"{AGENT}.pem",
                           pki_home / "demo" / f"{AGENT}.key")
        headers = {"Content-Type": "application/pdf"}
        warm = [(f"/upload/warm-{n}", d, headers) for n, d in _bodies(50, args.size, "nginx-warm")]
        run_load(Target("warmup", port, "PUT", warm), ctx, args.concurrency)
        results = []
        for r in range(args.rounds):
            reqs = [(f"/upload/{n}", d, headers) for n, d in _bodies(args.n, args.size, f"nginx-{r}")]
            workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                      text=True).stdout.split()]
            cpu = sum(cpu_seconds(p) for p in workers)
            result = run_load(Target("nginx_put", port, "PUT", reqs), ctx, args.concurrency)
            result.server_cpu_ms = (sum(cpu_seconds(p) for p in workers) - cpu) * 1000 / len(reqs)
            results.append(result)
        return _median(results)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(prefix, ignore_errors=True)
        shutil.rmtree(pki_home, ignore_errors=True)


def _median(results: list[Result]) -> Result:
    return Result(statistics.median(r.rate for r in results), statistics.median(r.p50_ms for r in results),
                  statistics.median(r.p99_ms for r in results), sum(r.errors for r in results),
                  statistics.median(r.server_cpu_ms for r in results))


def _line(target: str, result: Result, args: argparse.Namespace) -> str:
    errors = f"  errors={result.errors}" if result.errors else ""
    return (f"rest_upload  target={target:<10s}  concurrency={args.concurrency}  workers={args.workers}  "
            f"pdf{args.size // 1024}k  "
            f"rate={result.rate:.0f}/s  p50={result.p50_ms:.1f} ms  p99={result.p99_ms:.1f} ms  "
            f"server_cpu={result.server_cpu_ms:.1f} ms/upload  load={os.getloadavg()[0]:.1f}  "
            f"(median of {args.rounds}×{args.n}){errors}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="uploads per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="server processes (parafe serve --workers; default: one per core)")
    parser.add_argument("--size", type=int, default=100 * 1024, help="bytes per PDF (default 100 KB)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", default=os.environ.get(
        "PARAFE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--no-nginx", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the Parafe homes (server logs)")
    args = parser.parse_args()
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        result, _home = bench_parafe(backend, args)
        print(_line(backend, result, args), flush=True)
    if not args.no_nginx:
        ceiling = bench_nginx(args)
        if ceiling is not None:
            print(_line("nginx_put", ceiling, args), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
