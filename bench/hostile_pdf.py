"""A hostile PDF against a real server (issue 18): a 96 MiB PDF of 1,000,000 empty pages uploaded over REST while
``/healthz`` is probed; prints the probe's latencies (p50, p99, max) before and during the upload, and the server
process's memory (RSS before, peak growth, RSS after).

One ``parafe serve`` (TLS, one process, in-process workflow worker off) on a fresh SQLite home. ``--mode announced``
keeps the default limits (the object count the trailer announces is over ``PARAFE_PDF_MAX_OBJECTS``: refused
without parsing); ``--mode parsed`` raises that limit so the file is parsed — in the checker's bounded child
process — and refused on its page count. ``--parallel N`` uploads N copies at once.

Usage: .venv/bin/python bench/hostile_pdf.py [--mode announced|parsed] [--parallel 1] [--pages 1000000]
Prints:
  hostile_pdf  mode=…  parallel=…  pages=…  size=… MiB  status=422/257  upload=… s
  healthz  before: n=… p50=… ms p99=… ms max=… ms   during: n=… p50=… ms p99=… ms max=… ms
  server  rss_before=… MiB  peak_growth=… MiB  rss_after=… MiB  load=…
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
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import serve  # noqa: E402  (bench/ is the script's folder)

from parafe.devtools.hostile_pdf import write_many_pages  # noqa: E402

AGENT = "agent@demo.parafe.test"
UPLOAD = "/parapheur-ws/rest/v1/documents/v2/123456789/bureautique/upload"
BOUNDARY = "----parafe-bench-hostile"
MIB = 1024 * 1024


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def _env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFE_")}
    env.update(PARAFE_HOME=str(home), PARAFE_DATABASE_URL=f"sqlite:///{home / 'parafe.db'}", PARAFE_WORKERS="1",
               PARAFE_WORKER_IN_PROCESS="false", **extra)
    return env


def _multipart(path: Path, name: str) -> Iterator[bytes]:
    yield (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{name}\"\r\n"
           "Content-Type: application/pdf\r\n\r\n").encode()
    with open(path, "rb") as fh:
        while chunk := fh.read(MIB):
            yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _describe(values: list[float]) -> str:
    if not values:
        return "n=0"
    return (f"n={len(values)} p50={statistics.median(values):.1f} ms p99={_percentile(values, 0.99):.1f} ms "
            f"max={max(values):.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("announced", "parsed"), default="announced")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--pages", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="parafe-hostile-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        hostile = home / "million.pdf"
        size = write_many_pages(hostile, args.pages)
        extra = {"PARAFE_PDF_MAX_OBJECTS": str(args.pages * 2 + 10)} if args.mode == "parsed" else {}
        env = _env(home, extra)
        subprocess.run([sys.executable, "-m", "parafe", "init"], cwd=str(ROOT), env=env, check=True,
                       stdout=subprocess.DEVNULL)
        proc, url = serve(home, env, ROOT)
        ca = str(home / "pki" / "ca.pem")
        cert = (str(home / "demo" / f"{AGENT}.pem"), str(home / "demo" / f"{AGENT}.key"))
        import ssl

        tls = ssl.create_default_context(cafile=ca)
        tls.load_cert_chain(*cert)
        with httpx.Client(base_url=url, verify=tls, timeout=600) as c:  # warm-up: a normal deposit
            from benchlib import pdf_of_pages

            r = c.post(UPLOAD, files={"content": ("normal.pdf", pdf_of_pages(3), "application/pdf")})
            r.raise_for_status()

        samples: list[tuple[float, float]] = []  # (start, latency ms)
        stop = threading.Event()

        def probe() -> None:
            with httpx.Client(base_url=url, verify=ca, timeout=60) as client:
                while not stop.is_set():
                    start = time.perf_counter()
                    client.get("/healthz").raise_for_status()
                    samples.append((start, (time.perf_counter() - start) * 1000))
                    stop.wait(0.02)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        time.sleep(3)
        rss_before = _status_kib(proc.pid, "VmRSS")
        hwm_before = _status_kib(proc.pid, "VmHWM")
        results: list[tuple[int, int | None]] = []

        def upload(i: int) -> None:
            with httpx.Client(base_url=url, verify=tls, timeout=600) as client:
                r = client.post(UPLOAD, content=_multipart(hostile, f"million-{i}.pdf"),
                                headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
                code = r.json().get("errorCode") if r.headers.get("content-type", "").startswith(
                    "application/json") else None
                results.append((r.status_code, code))

        began = time.perf_counter()
        uploaders = [threading.Thread(target=upload, args=(i,)) for i in range(args.parallel)]
        for t in uploaders:
            t.start()
        for t in uploaders:
            t.join()
        ended = time.perf_counter()
        time.sleep(1)
        stop.set()
        prober.join(10)
        rss_after = _status_kib(proc.pid, "VmRSS")
        hwm_after = _status_kib(proc.pid, "VmHWM")
        before = [ms for start, ms in samples if start < began]
        during = [ms for start, ms in samples if began <= start <= ended]
        statuses = ",".join(f"{s}/{c}" for s, c in results)
        print(f"hostile_pdf  mode={args.mode}  parallel={args.parallel}  pages={args.pages}  "
              f"size={size / MIB:.1f} MiB  status={statuses}  upload={ended - began:.1f} s")
        print(f"healthz  before: {_describe(before)}   during: {_describe(during)}")
        print(f"server  rss_before={rss_before / 1024:.0f} MiB  peak_growth={(hwm_after - hwm_before) / 1024:.0f} MiB"
              f"  rss_after={rss_after / 1024:.0f} MiB  load={os.getloadavg()[0]:.1f}")
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
