"""Streaming limits on the real server: a 101 MiB upload is cut at 100 MiB with the catalogue error, the
server's memory stays bounded and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from parafe.domain.errors import E
from tests.conftest import LiveServer

MIB = 1024 * 1024
UPLOAD = "/parapheur-ws/rest/v1/documents/v2/123456789/bureautique/upload"


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _multipart(size: int, boundary: str = "----parafe-test") -> Iterator[bytes]:
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"gros.pdf\"\r\n\r\n"
           ).encode()
    chunk = b"%PDF-1.4\n" + b"0" * (MIB - 9)
    sent = 0
    while sent < size:
        part = chunk[: min(MIB, size - sent)]
        sent += len(part)
        yield part
    yield f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_101_mib_stream_refused_with_bounded_memory(live_server: LiveServer) -> None:
    before = _vm_hwm_kib(live_server.process.pid)
    with live_server.client("agent@demo.parafe.test") as c:
        r = c.post(UPLOAD, content=_multipart(101 * MIB),
                   headers={"content-type": "multipart/form-data; boundary=----parafe-test"})
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["errorCode"] == E.FILE_TOO_LARGE.code
    assert body["userFriendlyMessage"] == "Fichier trop volumineux."
    after = _vm_hwm_kib(live_server.process.pid)
    # the body was never held in memory: the peak grew by far less than the 101 MiB sent
    assert after - before < 40 * 1024, (before, after)
    home = live_server.home.path
    blobs = [p for p in (home / "blobs").rglob("*") if p.is_file()] if (home / "blobs").exists() else []
    assert [p for p in blobs if "tmp" not in p.parts] == []
    assert [p for p in (home / "tmp").iterdir() if p.is_file()] == [] if (home / "tmp").exists() else True
