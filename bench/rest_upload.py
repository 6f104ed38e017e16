"""Deposit throughput and latency over HTTPS with client certificates — REST ``upload``, WebDAV ``PUT`` and SOAP
``upload`` on the same server — against the machine's ceiling measured in the same run: a plain nginx HTTPS
``PUT`` (WebDAV module) of the same files with the same load generator.

One ``parafe serve`` (TLS, its default process count, in-process workflow worker off so that the deposit is what
is measured) per backend on a fresh home; ``--concurrency`` client threads (default 8), each with its own
keep-alive TLS connection (``http.client``) and the demo agent's certificate, deposit 100 KB PDFs (each one
distinct) into ``bureautique``: REST ``/parapheur-ws/rest/v1/documents/v2/123456789/bureautique/upload``
(multipart), WebDAV ``PUT /partage/webdav/clients/123456789/in/bureautique/<label>/<name>``, SOAP ``upload``
(base64 in the envelope). The nginx ceiling uses the same TLS server certificate, requests (optionally) the
same client certificate and writes each file to disk. Bodies are built before the clock starts; the client
runs on the same machine (loopback), so it shares the CPUs with the server.

Rounds are paired: each round runs nginx, then every protocol, one after the other, so that the ratios compare
figures taken under the same machine load (the 2-core machine is shared). Each figure is the median over
``--rounds`` rounds of ``--n`` uploads; ``ratio_nginx`` is the median of the per-round ratios to nginx's rate,
``ratio_rest`` (WebDAV, SOAP) the median of the per-round ratios to REST's.

Usage: .venv/bin/python bench/rest_upload.py [--n 600] [--rounds 3] [--concurrency 8] [--postgres URL]
                                             [--backends sqlite,postgresql] [--protocols rest,webdav,soap]
                                             [--no-nginx]
Prints one line per backend and protocol, then nginx's (``server_cpu``: CPU time of the server process(es) per
upload, a figure that does not depend on what else the machine runs; ``load``: the 1-minute load average):
  rest_upload  target=sqlite/rest    concurrency=8 … rate=…/s  p50=… ms  p99=… ms  server_cpu=… ms/upload
      ratio_nginx=…% …
  rest_upload  target=sqlite/webdav  … ratio_nginx=…%  ratio_rest=…
  rest_upload  target=nginx_put      …
"""

from __future__ import annotations

import argparse
import base64
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
from benchlib import (  # noqa: E402  (bench/ is the script's folder)
    cpu_seconds,
    create_pg_database,
    delete_at_exit,
    drop_pg_database,
    free_port,
    pdf_of_size,
    settle_file_system,
)

SIREN = "123456789"
AGENT = "agent@demo.parafe.test"
REST_PATH = f"/parapheur-ws/rest/v1/documents/v2/{SIREN}/bureautique/upload"
DAV_FOLDER = f"/partage/webdav/clients/{SIREN}/in/bureautique"
SOAP_PATH = "/parapheur-soap/soap/v1/Documents"
PROTOCOLS = ("rest", "webdav", "soap")



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


def _soap(name: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<SOAP-ENV:Envelope '
            'xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns1="http://sei.ws.fast.cdc.com/">'
            "<SOAP-ENV:Body><ns1:upload><label>bench</label><comment></comment>"
            f"<subscriberId>{SIREN}</subscriberId><circuitId>bureautique</circuitId><dataFileVO><dataHandler>"
            f"{base64.b64encode(data).decode()}</dataHandler><filename>{name}</filename></dataFileVO></ns1:upload>"
            "</SOAP-ENV:Body></SOAP-ENV:Envelope>\n").encode()
    return body, {"Content-Type": "text/xml; charset=utf-8", "Content-Length": str(len(body))}


def _requests(protocol: str, n: int, size: int, tag: str) -> tuple[str, list[tuple[str, bytes, dict[str, str]]]]:
    """The HTTP method and the ``n`` requests of one round of ``protocol``, built before the clock starts."""
    bodies = _bodies(n, size, tag)
    if protocol == "rest":
        return "POST", [(REST_PATH, *_multipart(name, data)) for name, data in bodies]
    if protocol == "webdav":
        headers = {"Content-Type": "application/pdf"}
        return "PUT", [(f"{DAV_FOLDER}/{tag}/{name}", data, {**headers, "Content-Length": str(len(data))})
                       for name, data in bodies]
    if protocol == "soap":
        return "POST", [(SOAP_PATH, *_soap(name, data)) for name, data in bodies]
    raise ValueError(protocol)


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


class ParafeServer:
    """A fresh home and a running ``parafe serve`` on ``backend`` (``sqlite`` or ``postgresql``)."""

    def __init__(self, backend: str, args: argparse.Namespace) -> None:
        self.backend, self.args = backend, args
        self.home = Path(tempfile.mkdtemp(prefix=f"parafe-restbench-{backend}-"))
        self.dbname: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        if backend == "sqlite":
            url = f"sqlite:///{self.home / 'parafe.db'}"
        else:
            url, self.dbname = create_pg_database(args.postgres)
        try:
            _init_home(self.home, url)
            self.port = free_port()
            self.proc = _serve(self.home, url, self.port, args.workers)
        except BaseException:
            self.close()
            raise
        demo = self.home / "demo"
        self.ctx = _ssl_context(self.home / "pki" / "ca.pem", demo / f"{AGENT}.pem", demo / f"{AGENT}.key")
        for protocol in args.protocols:  # warm-up: today's label, caches, the checker pool
            method, reqs = _requests(protocol, 1 + 4 * args.concurrency, args.size, f"{backend}-warm-{protocol}")
            run_load(Target("warmup", self.port, method, reqs[:1]), self.ctx, 1)
            run_load(Target("warmup", self.port, method, reqs[1:]), self.ctx, args.concurrency)

    def round(self, protocol: str, index: int) -> Result:
        assert self.proc is not None
        method, reqs = _requests(protocol, self.args.n, self.args.size, f"{self.backend}-{protocol}-{index}")
        cpu = cpu_seconds(self.proc.pid)
        result = run_load(Target(f"{self.backend}/{protocol}", self.port, method, reqs), self.ctx,
                          self.args.concurrency)
        result.server_cpu_ms = (cpu_seconds(self.proc.pid) - cpu) * 1000 / len(reqs)
        return result

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None
        if not self.args.keep:
            delete_at_exit(self.home)  # at the end: the next backend must not pay for this clean-up
        if self.dbname:
            drop_pg_database(self.args.postgres, self.dbname)
            self.dbname = None


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


class Nginx:
    """nginx serving HTTPS ``PUT`` into a temporary folder (the ceiling), or ``None`` from :meth:`start`."""

    @classmethod
    def start(cls, args: argparse.Namespace) -> Nginx | None:
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if nginx is None:
            print("  nginx not installed (apt-get install nginx): ceiling skipped", file=sys.stderr)
            return None
        return cls(nginx, args)

    def __init__(self, nginx: str, args: argparse.Namespace) -> None:
        from parafe.security.pki_dev import init_dev_pki

        self.args = args
        self.prefix = Path(tempfile.mkdtemp(prefix="parafe-nginx-"))
        self.pki_home = Path(tempfile.mkdtemp(prefix="parafe-nginx-pki-"))
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            init_dev_pki(self.pki_home, [(AGENT, "Alice Agent")])
            (self.prefix / "www" / "upload").mkdir(parents=True)
            self.port = free_port()
            conf = self.prefix / "nginx.conf"
            conf.write_text(NGINX_CONF.format(prefix=self.prefix, port=self.port, pki=self.pki_home / "pki"))
            self.proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(self.prefix), "-g", "daemon off;"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            _wait(self.port, self.pki_home / "pki" / "ca.pem", self.proc)
        except BaseException:
            self.close()
            raise
        demo = self.pki_home / "demo"
        self.ctx = _ssl_context(self.pki_home / "pki" / "ca.pem", demo / f"{AGENT}.pem", demo / f"{AGENT}.key")
        headers = {"Content-Type": "application/pdf"}
        warm = [(f"/upload/warm-{n}", d, headers) for n, d in _bodies(50, args.size, "nginx-warm")]
        run_load(Target("warmup", self.port, "PUT", warm), self.ctx, args.concurrency)

    def round(self, index: int) -> Result:
        assert self.proc is not None
        headers = {"Content-Type": "application/pdf"}
        # a name of its own per round: PUT over the previous round's file would free its inode, and on these
        # machines' ext4 without a journal recently freed inodes slow every later file creation down (benchlib)
        reqs = [(f"/upload/{index}-{n}", d, headers)
                for n, d in _bodies(self.args.n, self.args.size, f"nginx-{index}")]
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                                                  text=True).stdout.split()]
        cpu = sum(cpu_seconds(p) for p in workers)
        result = run_load(Target("nginx_put", self.port, "PUT", reqs), self.ctx, self.args.concurrency)
        result.server_cpu_ms = (sum(cpu_seconds(p) for p in workers) - cpu) * 1000 / len(reqs)
        return result

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None
        delete_at_exit(self.prefix, self.pki_home)


def _median(results: list[Result]) -> Result:
    return Result(statistics.median(r.rate for r in results), statistics.median(r.p50_ms for r in results),
                  statistics.median(r.p99_ms for r in results), sum(r.errors for r in results),
                  statistics.median(r.server_cpu_ms for r in results))


def _line(target: str, result: Result, args: argparse.Namespace, ratios: str = "") -> str:
    errors = f"  errors={result.errors}" if result.errors else ""
    return (f"rest_upload  target={target:<18s}  concurrency={args.concurrency}  workers={args.workers}  "
            f"pdf{args.size // 1024}k  "
            f"rate={result.rate:.0f}/s  p50={result.p50_ms:.1f} ms  p99={result.p99_ms:.1f} ms  "
            f"server_cpu={result.server_cpu_ms:.1f} ms/upload{ratios}  load={os.getloadavg()[0]:.1f}  "
            f"(median of {args.rounds}×{args.n}){errors}")


def _ratio(values: list[float], unit: str = "") -> str:
    scale = 100 if unit == "%" else 1
    listed = ", ".join(f"{scale * v:.{1 if unit else 2}f}" for v in values)
    return f"{scale * statistics.median(values):.{1 if unit else 2}f}{unit} ({listed})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600, help="uploads per round and protocol")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="server processes (parafe serve --workers; default: one per core)")
    parser.add_argument("--size", type=int, default=100 * 1024, help="bytes per PDF (default 100 KB)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help="among rest, webdav, soap")
    parser.add_argument("--postgres", default=os.environ.get(
        "PARAFE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--no-nginx", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the Parafe homes (server logs)")
    args = parser.parse_args()
    args.protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    if set(args.protocols) - set(PROTOCOLS):
        parser.error(f"--protocols: among {', '.join(PROTOCOLS)}")
    settle_file_system()  # files deleted just before this run slow file creation down (benchlib)
    nginx = None if args.no_nginx else Nginx.start(args)
    ceiling: list[Result] = []
    try:
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            server = ParafeServer(backend, args)
            try:
                results: dict[str, list[Result]] = {p: [] for p in args.protocols}
                anchors: list[Result] = []
                for index in range(args.rounds):
                    if nginx is not None:
                        anchors.append(nginx.round(index))
                    for protocol in args.protocols:
                        results[protocol].append(server.round(protocol, index))
                ceiling.extend(anchors)
            finally:
                server.close()
            for protocol in args.protocols:
                ratios = ""
                if anchors:
                    ratios += "  ratio_nginx=" + _ratio(
                        [r.rate / a.rate for r, a in zip(results[protocol], anchors, strict=True)], "%")
                if protocol != "rest" and "rest" in results:
                    ratios += "  ratio_rest=" + _ratio(
                        [r.rate / q.rate for r, q in zip(results[protocol], results["rest"], strict=True)])
                print(_line(f"{backend}/{protocol}", _median(results[protocol]), args, ratios), flush=True)
    finally:
        if nginx is not None:
            nginx.close()
    if ceiling:
        print(_line("nginx_put", _median(ceiling), args), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
