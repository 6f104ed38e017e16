"""Deposits per second through the service layer (no HTTP), SQLite and PostgreSQL, plus peak RSS of a 100 MiB deposit.

Prints one line per figure:
  deposit  backend=sqlite  pdf100k=…/s  pes_pj_2.4MB=…/s
  deposit  backend=postgresql …
  deposit  rss_100MiB_peak=… MiB (baseline after imports … MiB)
Usage: .venv/bin/python bench/deposit.py [--n 200] [--postgres URL]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import create_pg_database, drop_pg_database, pdf_of_size  # noqa: E402  (bench/ is the script's folder)

if TYPE_CHECKING:
    from parafe.context import AppContext

PES_PJ = ROOT / "tests" / "data" / "pes" / "samples" / "valid_PES_PJ.xml"


def _setup(home: Path, url: str) -> AppContext:
    os.environ["PARAFE_HOME"] = str(home)
    os.environ["PARAFE_DATABASE_URL"] = url
    from parafe.cli import initialise
    from parafe.config import get_settings, reset_settings
    from parafe.context import AppContext

    reset_settings()
    initialise(verbose=False)
    return AppContext.from_settings(get_settings())


def _pdf(size: int, seed: str) -> bytes:
    import io

    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 720, f"bench {seed}")
    c.showPage()
    c.save()
    data = buf.getvalue()
    # pad with a comment before the cross-reference table and move startxref by as much: padding after
    # startxref makes readers reconstruct the table (a damaged file, refused at deposit since issue 18)
    xref = data.rindex(b"\nxref\n") + 1
    pad = b"%" + b"x" * max(0, size - len(data) - 2) + b"\n"
    head, _, rest = data[xref:].rpartition(b"startxref\n")
    offset, _, tail = rest.partition(b"\n")
    return data[:xref] + pad + head + b"startxref\n" + str(int(offset) + len(pad)).encode() + b"\n" + tail


def _rate(ctx: AppContext, circuit: str, n: int, make: Callable[[int], tuple[str, bytes]]) -> float:
    from parafe.services.access.auth import principal_for_email
    from parafe.services.documents.deposit import DepositRequest, Upload, deposit

    principal = principal_for_email(ctx, "agent@demo.parafe.test")
    tmp = Path(tempfile.mkdtemp())
    uploads = []
    for i in range(n):
        name, data = make(i)
        path = tmp / f"u{i}"
        path.write_bytes(data)
        uploads.append(Upload(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), filename=name))
    start = time.perf_counter()
    for up in uploads:
        deposit(ctx, principal, DepositRequest(siren="123456789", circuit=circuit, upload=up))
    elapsed = time.perf_counter() - start
    shutil.rmtree(tmp, ignore_errors=True)
    return n / elapsed



def run_backend(backend: str, n: int, pg_url: str | None) -> str:
    home = Path(tempfile.mkdtemp(prefix="parafe-bench-"))
    dbname = None
    if backend == "sqlite":
        url = f"sqlite:///{home / 'parafe.db'}"
    else:
        assert pg_url
        url, dbname = create_pg_database(pg_url)
    try:
        ctx = _setup(home, url)
        pdf_base = pdf_of_size(100 * 1024, "x")
        pdf_rate = _rate(ctx, "bureautique", n, lambda i: (f"doc-{i}.pdf", pdf_base + f"%{i}\n".encode()))
        pes = PES_PJ.read_bytes()

        def make_pes(i: int) -> tuple[str, bytes]:
            nom_fic = rb"\g<1>BENCH" + str(i).encode() + rb"\2"
            return f"pj-{i}.xml", re.sub(rb'(<NomFic V=")[^"]*(")', nom_fic, pes, count=1)

        pes_rate = _rate(ctx, "pes-pj", max(10, n // 10), make_pes)
        ctx.close()
        return f"deposit  backend={backend}  pdf100k={pdf_rate:.1f}/s  pes_pj_2.4MB={pes_rate:.1f}/s"
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if dbname and pg_url:
            drop_pg_database(pg_url, dbname)


RSS_CHILD = r"""
import hashlib, os, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
home = Path(sys.argv[2]); big = Path(sys.argv[3])
os.environ["PARAFE_HOME"] = str(home); os.environ["PARAFE_DATABASE_URL"] = f"sqlite:///{home/'parafe.db'}"
from parafe.cli import initialise
from parafe.config import get_settings
from parafe.context import AppContext
from parafe.services.access.auth import principal_for_email
from parafe.services.documents.deposit import DepositRequest, Upload, deposit
from parafe.storage.spool import HashingSpool
import pikepdf, lxml.etree
initialise(verbose=False)
ctx = AppContext.from_settings(get_settings())
def hwm():  # VmHWM is per address space (reset by exec); ru_maxrss would include the parent's peak
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base = hwm()
spool = HashingSpool(ctx.tmp_dir, limit=ctx.settings.max_upload_bytes)
with open(big, "rb") as fh:
    spool.write_from(fh)
f = spool.finish()
doc = deposit(ctx, principal_for_email(ctx, "agent@demo.parafe.test"),
              DepositRequest(siren="123456789", circuit="bureautique",
                             upload=Upload(f.path, f.sha256, f.size, "gros.pdf")))
peak = hwm()
print(base // 1024, peak // 1024, doc.document_id)
"""


def rss_100mib() -> str:
    home = Path(tempfile.mkdtemp(prefix="parafe-rss-"))
    big = home / "big.pdf"
    big.write_bytes(_pdf(100 * 1024 * 1024 - 4096, "big"))
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(ROOT), str(home / "h"), str(big)],
                         capture_output=True, text=True, check=True)
    base, peak, _doc = out.stdout.split()
    shutil.rmtree(home, ignore_errors=True)
    return f"deposit  rss_100MiB_peak={peak} MiB  (baseline after imports {base} MiB; file 100 MiB)"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--postgres", default=os.environ.get(
        "PARAFE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql"):
        lines = [run_backend(backend, args.n, args.postgres) for _ in range(args.runs)]
        print(lines[len(lines) // 2] if args.runs > 1 else lines[0], flush=True)
    print(rss_100mib(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
