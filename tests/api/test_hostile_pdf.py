"""Hostile documents cannot exhaust the server (issue 18 point 1): a 96 MiB PDF of 1,000,000 empty pages, uploaded
to a real ``parafe serve``, is refused with ``PDF_TOO_COMPLEX`` (257); the server's peak memory grows by far less
than the 2.4 GB the same file used to take, its memory is back to its level before, and ``/healthz`` answers
during the upload.

Two ways the file is refused: ``announced`` (default limits: the object count its trailer announces is over
``PARAFE_PDF_MAX_OBJECTS``, read from the end of the file without parsing), and ``parsed`` (the object limit
raised: the file is parsed — in the bounded child process, never in the server — and refused on its page count).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from parafe.devtools.hostile_pdf import write_many_pages
from parafe.domain.errors import E
from tests.conftest import Home, start_server, stop_server
from tests.fixtures.files import pdf_bytes

MIB = 1024 * 1024
UPLOAD = "/parapheur-ws/rest/v1/documents/v2/123456789/bureautique/upload"
AGENT = "agent@demo.parafe.test"
BOUNDARY = "----parafe-hostile"


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {key}")


def _multipart(path: Path, name: str) -> Iterator[bytes]:
    yield (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{name}\"\r\n"
           "Content-Type: application/pdf\r\n\r\n").encode()
    with open(path, "rb") as fh:
        while chunk := fh.read(MIB):
            yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


class HealthProbe(threading.Thread):
    """``GET /healthz`` in a loop on one keep-alive connection; records (status, latency in ms)."""

    def __init__(self, url: str, home: Home) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=url, verify=home.ssl_context(), timeout=60)
        self.samples: list[tuple[int, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with self.client:
            while not self.stop.is_set():
                start = time.perf_counter()
                status = self.client.get("/healthz").status_code
                self.samples.append((status, (time.perf_counter() - start) * 1000))
                self.stop.wait(0.02)


def _blob_files(home: Home) -> set[Path]:
    root = home.path / "blobs"
    return {p for p in root.rglob("*") if p.is_file() and "tmp" not in p.parts} if root.exists() else set()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("where", ["announced", "parsed"])
def test_million_page_pdf_refused_with_bounded_server_memory(home: Home, tmp_path: Path, where: str) -> None:
    hostile = tmp_path / "million.pdf"
    size = write_many_pages(hostile, 1_000_000)
    assert 90 * MIB < size < 100 * MIB
    env = {"PARAFE_WORKER_IN_PROCESS": "false"}
    if where == "parsed":
        env["PARAFE_PDF_MAX_OBJECTS"] = "2000000"
    server = start_server(home, env)
    try:
        pid = server.process.pid
        with server.client(AGENT) as c:  # warm-up: a normal deposit (lazy imports, the checker's forkserver)
            r = c.post(UPLOAD, files={"content": ("normal.pdf", pdf_bytes(3), "application/pdf")})
            assert r.status_code == 200, r.text
        blobs_before = _blob_files(home)
        rss_before = _status_kib(pid, "VmRSS")
        hwm_before = _status_kib(pid, "VmHWM")
        probe = HealthProbe(server.url, home)
        probe.start()
        time.sleep(0.2)
        started = len(probe.samples)
        with server.client(AGENT) as c:
            r = c.post(UPLOAD, content=_multipart(hostile, "million.pdf"),
                       headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
        during = probe.samples[started:]
        probe.stop.set()
        probe.join(10)
        assert r.status_code == 422, r.text[:500]
        body = r.json()
        assert body["errorCode"] == E.PDF_TOO_COMPLEX.code == 257
        assert body["userFriendlyMessage"].startswith("Fichier refusé : le document PDF dépasse les limites")
        assert ("objets" if where == "announced" else "1000000 pages") in body["userFriendlyMessage"]
        time.sleep(1.0)  # let the server finish with the request (spool file removed, buffers freed)
        rss_after = _status_kib(pid, "VmRSS")
        hwm_after = _status_kib(pid, "VmHWM")
        latencies = sorted(ms for _, ms in during)
        print(f"\n[{where}] server RSS {rss_before / 1024:.0f} MiB -> {rss_after / 1024:.0f} MiB, peak growth "
              f"{(hwm_after - hwm_before) / 1024:.0f} MiB; /healthz during the upload: {len(latencies)} answers, "
              f"p50 {statistics.median(latencies) if latencies else 0:.1f} ms, "
              f"max {latencies[-1] if latencies else 0:.1f} ms")
        # the server process's peak grew by far less than the 2.4 GB it used to keep (budget: 200 MB)
        assert (hwm_after - hwm_before) * 1024 < 200 * 1000 * 1000, (hwm_before, hwm_after)
        # and its memory is back within 10 % of its level before the request
        assert abs(rss_after - rss_before) <= rss_before * 0.10, (rss_before, rss_after)
        # /healthz answered while the server received and checked the file
        assert during, during[:5]
        assert all(status == 200 for status, _ in during), during[:5]
        # nothing stored: no new blob, no spool file left
        assert _blob_files(home) == blobs_before
        tmp = home.path / "tmp"
        assert not tmp.exists() or [p for p in tmp.rglob("*") if p.is_file()] == []
    finally:
        stop_server(server)
