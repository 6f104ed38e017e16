"""WebDAV connector figures against a real ``parafe serve`` over TLS (client certificates), in one run:

1. PUTs per second of 100 KB PDFs with 8 concurrent clients (curl ``--parallel``: one C client process, keep-alive
   connections, so that the client does not eat the CPU the server needs); every PUT must answer 201.
2. PROPFIND Depth 1 latency (p50/p99) on an out/ folder holding 10,000 returns (signed documents with distinct
   blobs, set up directly in the database), and the same on WsgiDAV's own FilesystemProvider serving a folder of
   10,000 files through the same stack (uvicorn + TLS + a2wsgi), as the baseline.

Prints one line per figure:
  webdav  put_100k_8clients=…/s  (median of R rounds of N: …/s, all 201, … s)
  webdav  propfind_d1_out_10000  accept-encoding=identity|gzip  p50=… ms  p99=… ms  (first=… ms, runs=…)
  webdav  propfind_d1_fsprovider_10000  p50=… ms  p99=… ms  (runs=…)
Usage: .venv/bin/python bench/webdav.py [--puts 1200] [--put-rounds 3] [--entries 10000] [--runs 30]
                                        [--server-workers N[,M]] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
The in-process workflow worker is off: the figures are the connector's (deposit service included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import create_pg_database, drop_pg_database, free_port, pdf_of_size  # noqa: E402  (bench/ is the script's folder)

MOUNT = "/partage/webdav/clients"
AGENT = "agent@demo.parafe.test"
PROPFIND_BODY = (b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/>'
                 b"<D:getcontentlength/><D:getlastmodified/><D:getetag/><D:getcontenttype/></D:prop></D:propfind>")

FS_SERVER = r"""
import sys, uvicorn
from a2wsgi import WSGIMiddleware
from starlette.applications import Starlette
from starlette.routing import Mount
from wsgidav.fs_dav_provider import FilesystemProvider
from wsgidav.wsgidav_app import WsgiDAVApp
root, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
dav = WsgiDAVApp({"provider_mapping": {"/": FilesystemProvider(root)}, "mount_path": "/fs",
                  "simple_dc": {"user_mapping": {"*": True}}, "verbose": 1, "logging": {"enable": False},
                  "lock_storage": True, "property_manager": True})
app = Starlette(routes=[Mount("/fs", app=WSGIMiddleware(dav, workers=32))])
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ssl_certfile=cert, ssl_keyfile=key)
"""





def _wait(url: str, ca: str, process: subprocess.Popen[bytes], path: str = "/healthz") -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited")
        try:
            httpx.request("OPTIONS" if path != "/healthz" else "GET", url + path,
                          verify=ssl.create_default_context(cafile=ca), timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def _start_parafe(home: Path, workers: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFE_")}
    env.update(PARAFE_HOME=str(home), PARAFE_WORKER_IN_PROCESS="false", PARAFE_WORKERS=str(workers))
    if os.environ.get("PARAFE_DATABASE_URL"):
        env["PARAFE_DATABASE_URL"] = os.environ["PARAFE_DATABASE_URL"]
    log = open(home / "server.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "parafe", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--log-level", "warning"], cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    _wait(url, str(home / "pki" / "ca.pem"), process)
    return process, url


def bench_puts(home: Path, url: str, n: int, clients: int, rounds: int = 3) -> str:
    """``rounds`` rounds of ``n`` PUTs (each into a new label folder); the median rate and every round's."""
    work = Path(tempfile.mkdtemp(prefix="bench-put-", dir=home))
    base = pdf_of_size(100 * 1024, "put")
    paths = []
    for i in range(n):
        path = work / f"doc-{i:05d}.pdf"
        path.write_bytes(base + f"%{i}\n".encode())
        paths.append(path)
    demo = home / "demo"
    cmd = ["curl", "--silent", "--parallel", "--parallel-max", str(clients), "--cacert", str(home / "pki" / "ca.pem"),
           "--cert", str(demo / f"{AGENT}.pem"), "--key", str(demo / f"{AGENT}.key"), "--write-out",
           "%{http_code}\\n", "--config"]

    def config(label: str, count: int) -> Path:
        file = work / f"{label}.cfg"
        file.write_text("".join(
            f'upload-file = "{path}"\nurl = "{url}{MOUNT}/123456789/in/bureautique/{label}/{path.name}"\n'
            'output = "/dev/null"\n' for path in paths[:count]))
        return file

    # warm-up (connections, imports, caches)
    subprocess.run([*cmd, str(config(f"warm-{uuid.uuid4().hex[:8]}", 2 * clients))], capture_output=True, check=True)
    rates: list[float] = []
    statuses: list[str] = []
    total = 0.0
    for _ in range(rounds):
        cfg = config(f"bench-{uuid.uuid4().hex[:8]}", n)
        start = time.perf_counter()
        result = subprocess.run([*cmd, str(cfg)], capture_output=True, check=True)
        elapsed = time.perf_counter() - start
        total += elapsed
        codes = result.stdout.decode().split()
        ok = codes.count("201")
        if ok != n:
            statuses.append(f"only {ok} x 201: {sorted(set(codes))}")
        rates.append(n / elapsed)
    status = "all 201" if not statuses else "; ".join(statuses)
    listed = ", ".join(f"{rate:.0f}" for rate in rates)
    return (f"webdav  put_100k_{clients}clients={statistics.median(rates):.0f}/s  (median of {rounds} rounds of "
            f"{n}: {listed}/s, {status}, {total:.1f} s)")


def _populate_out(home: Path, entries: int) -> str:
    """``entries`` signed, filed documents deposited through WebDAV in one label folder (rows written directly)."""
    from sqlalchemy import insert, select

    from parafe.config import Settings
    from parafe.context import AppContext
    from parafe.db.models import Circuit, Document, Label, Subscriber, User, WebdavDeposit, utcnow
    from parafe.domain.states import State

    ctx = AppContext.from_settings(Settings(home=home, database_url=os.environ.get("PARAFE_DATABASE_URL")))
    label_name = f"out-{uuid.uuid4().hex[:8]}"
    shas = []
    for i in range(entries):
        data = b"%PDF-1.4 signed " + str(i).encode() + b" " + b"s" * 200
        shas.append(ctx.store.put_bytes(data).sha256)
    now = utcnow()
    with ctx.db.write() as session:
        sub = session.scalar(select(Subscriber).where(Subscriber.siren == "123456789"))
        assert sub is not None
        circuit = session.scalar(select(Circuit).where(Circuit.subscriber_id == sub.id, Circuit.key == "bureautique"))
        user = session.scalar(select(User).where(User.email == AGENT))
        assert circuit is not None
        assert user is not None
        label = Label(circuit_id=circuit.id, name=label_name)
        session.add(label)
        session.flush()
        first = None
        rows = []
        for i, sha in enumerate(shas):
            rows.append(dict(subscriber_id=sub.id, circuit_id=circuit.id, label_id=label.id, name=f"retour-{i:05d}.pdf",
                             kind="pdf", state=State.FILED.value, blob_sha256=sha, size=100, signed_blob_sha256=sha,
                             uploader_id=user.id, source="webdav", extra={}, created_at=now, updated_at=now))
        session.execute(insert(Document), rows)
        ids = list(session.scalars(select(Document.id).where(Document.label_id == label.id).order_by(Document.id)))
        first = ids[0]
        session.execute(insert(WebdavDeposit), [
            dict(document_id=doc_id, subscriber_id=sub.id, circuit_id=circuit.id, label_folder=label_name,
                 put_name=f"retour-{i:05d}.pdf", size=100, sha256=shas[i], created_at=now)
            for i, doc_id in enumerate(ids)])
    ctx.close()
    assert first is not None
    return label_name


def _latencies(url: str, ca: str, cert: tuple[str, str] | None, runs: int, expect: int,
               encoding: str = "identity") -> tuple[float, list[float]]:
    import httpx

    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(*cert)
    times = []
    with httpx.Client(verify=context, timeout=120) as client:
        for _ in range(runs + 1):
            start = time.perf_counter()
            r = client.request("PROPFIND", url, content=PROPFIND_BODY, headers={
                "Depth": "1", "Content-Type": "application/xml", "Accept-Encoding": encoding})
            times.append((time.perf_counter() - start) * 1000)
            assert r.status_code == 207, r.status_code
            count = r.content.count(b"<D:response>") + r.content.count(b"<ns0:response>")
            assert count == expect + 1, (count, expect)
    return times[0], times[1:]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_propfind(home: Path, url: str, entries: int, runs: int) -> list[str]:
    label = _populate_out(home, entries)
    demo = home / "demo"
    target = f"{url}{MOUNT}/123456789/out/bureautique/{label}/"
    cert = (str(demo / f"{AGENT}.pem"), str(demo / f"{AGENT}.key"))
    lines = []
    for encoding in ("identity", "gzip"):
        cold, times = _latencies(target, str(home / "pki" / "ca.pem"), cert, runs, entries, encoding)
        lines.append(f"webdav  propfind_d1_out_{entries}  accept-encoding={encoding}  "
                     f"p50={statistics.median(times):.0f} ms  p99={_pct(times, 0.99):.0f} ms  "
                     f"(first={cold:.0f} ms, runs={runs})")
    return lines


def bench_fs_baseline(home: Path, entries: int, runs: int) -> str:
    root = home / "fs-baseline"
    folder = root / "out"
    folder.mkdir(parents=True)
    for i in range(entries):
        (folder / f"retour-{i:05d}.pdf").write_bytes(b"%PDF-1.4 signed " + str(i).encode() + b" " + b"s" * 200)
    port = free_port()
    pki = home / "pki"
    process = subprocess.Popen([sys.executable, "-c", FS_SERVER, str(root), str(port), str(pki / "server.pem"),
                                str(pki / "server.key")], cwd=str(ROOT), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        url = f"https://127.0.0.1:{port}"
        _wait(url, str(pki / "ca.pem"), process, path="/fs/")
        _cold, times = _latencies(f"{url}/fs/out/", str(pki / "ca.pem"), None, runs, entries, "gzip")
    finally:
        process.terminate()
        process.wait(timeout=15)
    return (f"webdav  propfind_d1_fsprovider_{entries}  p50={statistics.median(times):.0f} ms"
            f"  p99={_pct(times, 0.99):.0f} ms  (runs={runs})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--puts", type=int, default=1200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--put-rounds", type=int, default=3, help="rounds of --puts PUTs (the median is printed)")
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--skip-put", action="store_true")
    parser.add_argument("--postgres", metavar="ADMIN_URL", default=None,
                        help="run on a fresh PostgreSQL database created with this admin URL (default: SQLite)")
    parser.add_argument("--server-workers", default=str(os.cpu_count() or 1),
                        help="comma-separated process counts of `parafe serve --workers` for the PUT figure "
                             "(default: one per core)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="parafe-bench-webdav-"))
    env_home = os.environ.get("PARAFE_HOME")
    os.environ["PARAFE_HOME"] = str(home)
    os.environ.pop("PARAFE_DATABASE_URL", None)
    dbname = None
    if args.postgres:
        os.environ["PARAFE_DATABASE_URL"], dbname = create_pg_database(args.postgres)
    print(f"webdav  backend={'postgresql' if dbname else 'sqlite'}", flush=True)
    try:
        from parafe.cli import initialise
        from parafe.config import reset_settings

        reset_settings()
        initialise(verbose=False)
        if not args.skip_put:
            for workers in (int(w) for w in args.server_workers.split(",")):
                process, url = _start_parafe(home, workers)
                try:
                    print(bench_puts(home, url, args.puts, args.clients, args.put_rounds)
                          + f"  [server processes: {workers}]",
                          flush=True)
                finally:
                    process.terminate()
                    process.wait(timeout=15)
        process, url = _start_parafe(home)
        try:
            for line in bench_propfind(home, url, args.entries, args.runs):
                print(line, flush=True)
        finally:
            process.terminate()
            process.wait(timeout=15)
        print(bench_fs_baseline(home, args.entries, args.runs), flush=True)
    finally:
        if env_home is None:
            os.environ.pop("PARAFE_HOME", None)
        else:
            os.environ["PARAFE_HOME"] = env_home
        shutil.rmtree(home, ignore_errors=True)
        if dbname and args.postgres:
            os.environ.pop("PARAFE_DATABASE_URL", None)
            drop_pg_database(args.postgres, dbname)
    return 0



if __name__ == "__main__":
    raise SystemExit(main())
