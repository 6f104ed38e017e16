"""Cost of the compliance recording point (issue 21) on the hot path, and of its batched writes.

Measured in-process, in CPU time (``time.thread_time``, independent of the machine's load):

- ``observe``: what the recording middleware adds to one request once the answer is sent — classification of
  the exchange and the recorder's in-memory update — over a realistic mix (REST uploads and listings, WebDAV
  PROPFIND/GET/DELETE/PUT, SOAP faults) from 50 client certificates;
- ``flush``: one batched write (SQLite, fresh home) of what those requests left in memory, per request.

Usage: .venv/bin/python bench/compliance.py [--n 200000]
Prints one line:
  compliance  observe=… µs/request  flush=… µs/request (batch of … requests, … counter rows)  budget=3 ms/deposit
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from parafe.config import Settings  # noqa: E402
from parafe.context import AppContext  # noqa: E402
from parafe.db.migrate import upgrade  # noqa: E402
from parafe.services.compliance.classify import classify  # noqa: E402
from parafe.services.compliance.recorder import ClientCert, Recorder  # noqa: E402

MIX = [
    ("POST", "/parapheur-ws/rest/v1/documents/v2/123456789/bureautique/upload", 200, None, None),
    ("GET", "/parapheur-ws/rest/v1/documents/v2/123456789/ack/remaining", 200, None, None),
    ("GET", "/parapheur-ws/rest/v1/documents/v2/400000123/history", 200, None, None),
    ("PROPFIND", "/partage/webdav/clients/123456789/out/bureautique/", 207, None, None),
    ("GET", "/partage/webdav/clients/123456789/out/bureautique/a.pdf", 200, None, None),
    ("DELETE", "/partage/webdav/clients/123456789/out/bureautique/a.pdf", 204, None, None),
    ("PUT", "/partage/webdav/clients/123456789/in/bureautique/b.exe", 415, 139, None),
    ("POST", "/parapheur-soap/soap/v1/Documents", 500, 149, "download"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp), compliance_flush_seconds=3600)
        upgrade(settings.db_url)
        ctx = AppContext.from_settings(settings)
        recorder = Recorder(ctx)
        recorder._thread = object()  # type: ignore[assignment]  # no background thread: flushes are timed below
        certs = [ClientCert(f"{i:064x}", f"CN=Client {i}", f"c{i}@example.fr", None) for i in range(50)]
        start = time.thread_time()
        now = time.time()
        for i in range(args.n):
            method, path, status, code, op = MIX[i % len(MIX)]
            obs = classify(method, path, status, code, op)
            assert obs is not None
            recorder.observe(certs[i % 50], obs, now=now + i * 0.01)
        observe = (time.thread_time() - start) / args.n
        rows = len(recorder._counters)
        start = time.thread_time()
        recorder.flush()
        flush = (time.thread_time() - start) / args.n
        ctx.close()
    print(f"compliance  observe={observe * 1e6:.1f} µs/request  flush={flush * 1e6:.1f} µs/request "
          f"(batch of {args.n} requests, {rows} counter rows)  budget=3 ms/deposit")


if __name__ == "__main__":
    main()
