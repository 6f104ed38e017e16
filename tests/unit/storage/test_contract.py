"""Contract of every blob store (filesystem and S3 against a moto server): one suite, both implementations."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from parafe.config import Settings
from parafe.storage import open_store
from parafe.storage.base import (
    BlobIntegrityError,
    BlobNotFound,
    BlobRef,
    BlobStore,
    InvalidBlobId,
)
from parafe.storage.fs import FilesystemBlobStore
from parafe.storage.spool import HashingSpool, SizeLimitExceeded
from tests.unit.storage.conftest import make_store, s3_params

REPO = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(store: BlobStore) -> list[str]:
    """Files left in the store's spool/temporary directory."""
    return sorted(p.name for p in store.spool_dir.iterdir()) if store.spool_dir.exists() else []


# ------------------------------------------------------------------------------------------ basic contract


def test_put_bytes_then_read_back(store: BlobStore) -> None:
    data = b"Bordereau PES " * 1000
    ref = store.put_bytes(data)
    assert ref == BlobRef(sha(data), len(data))
    assert store.exists(ref.sha256)
    assert store.size(ref.sha256) == len(data)
    assert store.read_bytes(ref.sha256) == data
    with store.open(ref.sha256) as fh:
        assert fh.read(5) == data[:5]
        assert fh.read() == data[5:]
    info = store.stat(ref.sha256)
    assert (info.sha256, info.size) == (ref.sha256, len(data))
    assert list(store.iter_refs()) == [ref.sha256]


def test_empty_blob(store: BlobStore) -> None:
    ref = store.put_bytes(b"")
    assert ref == BlobRef(sha(b""), 0)
    assert store.read_bytes(ref.sha256) == b""


def test_put_is_write_once_and_idempotent(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(10_000)
    first = store.put_bytes(data)
    src = tmp_path / "same.bin"
    src.write_bytes(data)
    assert store.put_file(src) == first
    assert src.exists()  # copy mode leaves the source alone
    assert store.put_file(src, sha256=first.sha256, move=True) == first
    assert not src.exists()  # move mode consumes the source, even when the blob was already there
    assert store.put_stream(open_bytes(data)) == first
    assert list(store.iter_refs()) == [first.sha256]
    assert store.read_bytes(first.sha256) == data
    assert leftovers(store) == []


def test_put_file_hashes_when_not_told(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "doc.pdf"
    src.write_bytes(b"%PDF-1.7 fake")
    ref = store.put_file(src, move=True)
    assert ref == BlobRef(sha(b"%PDF-1.7 fake"), 13)
    assert not src.exists()
    assert store.read_bytes(ref.sha256) == b"%PDF-1.7 fake"


def test_announced_hash_is_verified_when_copying(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "doc.xml"
    src.write_bytes(b"<PES_Aller/>")
    wrong = sha(b"something else")
    with pytest.raises(BlobIntegrityError):
        store.put_file(src, sha256=wrong)
    assert not store.exists(wrong)
    assert src.exists()
    assert list(store.iter_refs()) == []
    assert leftovers(store) == []


def test_put_files_stores_a_batch(store: BlobStore, tmp_path: Path) -> None:
    """Several files handed over at once (announced hash, unknown hash, the same content twice, content
    already stored): every one stored, every source file gone."""
    old = store.put_bytes(b"already there")
    sources = []
    for i, data in enumerate([b"original", b"signed", b"original", b"already there"]):
        path = tmp_path / f"f{i}"
        path.write_bytes(data)
        sources.append((path, sha(data) if i != 1 else None))
    refs = store.put_files(sources)
    assert [r.sha256 for r in refs] == [sha(b"original"), sha(b"signed"), sha(b"original"), old.sha256]
    assert [r.size for r in refs] == [8, 6, 8, 13]
    assert store.read_bytes(sha(b"signed")) == b"signed"
    assert store.read_bytes(sha(b"original")) == b"original"
    assert not any(path.exists() for path, _sha in sources)
    assert sorted(store.iter_refs()) == sorted({old.sha256, sha(b"original"), sha(b"signed")})


def test_unknown_blob(store: BlobStore) -> None:
    missing = sha(b"never stored")
    assert not store.exists(missing)
    with pytest.raises(BlobNotFound):
        store.open(missing)
    with pytest.raises(BlobNotFound):
        store.read_bytes(missing)
    with pytest.raises(BlobNotFound):
        store.size(missing)
    with pytest.raises(BlobNotFound):
        store.stat(missing)
    store.delete(missing)  # ignored


@pytest.mark.parametrize("bad", ["../../etc/passwd", "abc", "g" * 64, sha(b"x") + "0", ""])
def test_invalid_ids_are_refused(store: BlobStore, bad: str) -> None:
    with pytest.raises(InvalidBlobId):
        store.open(bad)
    with pytest.raises(InvalidBlobId):
        store.exists(bad)
    with pytest.raises(InvalidBlobId):
        store.delete(bad)


def test_iterate_and_delete(store: BlobStore) -> None:
    refs = [store.put_bytes(f"blob {i}".encode()) for i in range(5)]
    assert sorted(store.iter_refs()) == sorted(r.sha256 for r in refs)
    assert {(b.sha256, b.size) for b in store.iter_blobs()} == {(r.sha256, r.size) for r in refs}
    store.delete(refs[0].sha256)
    assert not store.exists(refs[0].sha256)
    assert sorted(store.iter_refs()) == sorted(r.sha256 for r in refs[1:])
    # a swept blob can be written again
    assert store.put_bytes(b"blob 0") == refs[0]
    assert store.exists(refs[0].sha256)


def test_duplicate_put_refreshes_modification_time(
    store_kind: str, store_params: dict[str, Any], tmp_path: Path
) -> None:
    """The orphan sweeper keys its grace period on the modification time: a re-put must refresh it."""
    store = make_store(store_kind, store_params, **({"refresh_after": 0} if store_kind == "s3" else {}))
    ref = store.put_bytes(b"shared annex")
    if isinstance(store, FilesystemBlobStore):
        path = store.local_path(ref.sha256)
        assert path is not None
        os.utime(path, (time.time() - 86400, time.time() - 86400))
        before = store.stat(ref.sha256).modified
        store.put_bytes(b"shared annex")
        assert (store.stat(ref.sha256).modified - before).total_seconds() > 80000
    else:
        store.put_bytes(b"shared annex")
        head = store.client.head_object(Bucket=store.bucket, Key=store.prefix + ref.sha256)  # type: ignore[attr-defined]
        assert "refreshed" in head["Metadata"]
        assert head["Metadata"]["sha256"] == ref.sha256
    assert store.read_bytes(ref.sha256) == b"shared annex"


# ------------------------------------------------------------------------------------------ concurrency


def test_concurrent_puts_of_the_same_content(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(2 * MIB)
    expected = BlobRef(sha(data), len(data))
    n = 8
    barrier = threading.Barrier(n)
    results: list[BlobRef | BaseException] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        src = tmp_path / f"copy-{i}.bin"
        src.write_bytes(data)
        barrier.wait()
        try:
            if i % 3 == 0:
                ref = store.put_bytes(data)
            elif i % 3 == 1:
                ref = store.put_file(src, sha256=expected.sha256, move=True)
            else:
                ref = store.put_file(src)
        except BaseException as exc:
            with lock:
                results.append(exc)
            return
        with lock:
            results.append(ref)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [expected] * n
    assert list(store.iter_refs()) == [expected.sha256]
    assert store.read_bytes(expected.sha256) == data
    assert leftovers(store) == []


# ------------------------------------------------------------------------------------------ streaming


def open_bytes(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


MEMORY_SCRIPT = r"""
import hashlib, io, json, sys, tracemalloc
kind, params, extra, total = json.loads(sys.argv[1])

class Source(io.RawIOBase):
    "20 MiB of non-repeating bytes, produced on demand."
    def __init__(self, total):
        self.left = total
        self.block = bytearray(hashlib.sha256(b"seed").digest() * 2048)  # 64 KiB
        self.counter = 0
        self.pending = b""
        self.hash = hashlib.sha256()
    def readable(self):
        return True
    def readinto(self, buf):
        if not self.pending and self.left:
            self.counter += 1
            self.block[:8] = self.counter.to_bytes(8, "big")
            self.pending = bytes(self.block[: min(len(self.block), self.left)])
            self.left -= len(self.pending)
            self.hash.update(self.pending)
        n = min(len(buf), len(self.pending))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

if kind == "fs":
    from parafe.storage.fs import FilesystemBlobStore
    store = FilesystemBlobStore(params["root"])
else:
    from parafe.storage.s3 import S3BlobStore
    params = dict(params, **extra)
    store = S3BlobStore(params.pop("bucket"), **params)
src = Source(total)
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
tracemalloc.reset_peak()
ref = store.put_stream(io.BufferedReader(src, 64 * 1024))
put_peak = tracemalloc.get_traced_memory()[1] - base
base = tracemalloc.get_traced_memory()[0]
tracemalloc.reset_peak()
h = hashlib.sha256()
with store.open(ref.sha256) as fh:
    while chunk := fh.read(256 * 1024):
        h.update(chunk)
read_peak = tracemalloc.get_traced_memory()[1] - base
print(json.dumps({"sha": ref.sha256, "size": ref.size, "expected": src.hash.hexdigest(),
                  "read": h.hexdigest(), "put_peak": put_peak, "read_peak": read_peak}))
"""


def _stream_20_mib(kind: str, params: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Run MEMORY_SCRIPT in a child process (so that the in-process moto server's buffers are not counted)."""
    make_store(kind, params)  # creates the bucket
    total = 20 * MIB
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, json.dumps([kind, params, extra, total])],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["size"] == total
    assert result["sha"] == result["expected"] == result["read"]
    store = make_store(kind, params)
    assert store.size(result["sha"]) == total
    assert leftovers(store) == []
    return result


def test_streaming_20_mib_with_bounded_memory(store_kind: str, store_params: dict[str, Any]) -> None:
    """A 20 MiB stream goes in (put_stream) and out (open) with a few MiB of Python memory at most."""
    result = _stream_20_mib(store_kind, store_params, {})
    # Measured: ~2.3 MB (fs) and ~2.5 MB (s3) to write, 0.5 / 2.7 MB to read; buffering would show 20 MiB.
    assert result["put_peak"] < 4.5 * MIB, result
    assert result["read_peak"] < 4.5 * MIB, result


def test_s3_multipart_streaming_with_bounded_memory(moto_endpoint: str, tmp_path: Path) -> None:
    extra = {"multipart_threshold": 8 * MIB, "part_size": 5 * MIB}
    result = _stream_20_mib("s3", s3_params(moto_endpoint, tmp_path), extra)
    # Measured ~3.6 MB with 5 MiB parts: parts are streamed from file slices, not buffered.
    assert result["put_peak"] < 4.5 * MIB, result
    assert result["read_peak"] < 4.5 * MIB, result


def test_s3_multipart_is_conditional_too(moto_endpoint: str, tmp_path: Path) -> None:
    params = s3_params(moto_endpoint, tmp_path)
    store = make_store("s3", params, multipart_threshold=6 * MIB, part_size=5 * MIB)
    data = os.urandom(12 * MIB + 123)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    ref = store.put_file(src)
    assert ref == BlobRef(sha(data), len(data))
    client = store.client  # type: ignore[attr-defined]
    key = store.prefix + ref.sha256  # type: ignore[attr-defined]
    head = client.head_object(Bucket=store.bucket, Key=key)  # type: ignore[attr-defined]
    assert head["Metadata"]["sha256"] == ref.sha256
    # The HEAD short-cut is bypassed here to exercise If-None-Match on CompleteMultipartUpload.
    from parafe.storage import s3

    with pytest.raises(s3._AlreadyThere):
        store._put_multipart(src, key, ref.sha256, len(data))  # type: ignore[attr-defined]
    assert not client.list_multipart_uploads(Bucket=store.bucket).get("Uploads")  # type: ignore[attr-defined]
    assert store.read_bytes(ref.sha256) == data


# ---------------------------------------------------------------------------------- spool and temp files


def test_temporary_files_are_cleaned(store: BlobStore, tmp_path: Path) -> None:
    store.put_bytes(b"a")
    store.put_bytes(b"a")
    src = tmp_path / "b.bin"
    src.write_bytes(b"b")
    store.put_file(src)
    with pytest.raises(SizeLimitExceeded):
        store.put_stream(open_bytes(b"x" * 5000), limit=4096)

    class Broken:
        def read(self, n: int = -1) -> bytes:
            raise OSError("client went away")

    with pytest.raises(OSError, match="went away"):
        store.put_stream(Broken())  # type: ignore[arg-type]
    assert sorted(store.iter_refs()) == sorted([sha(b"a"), sha(b"b")])
    assert leftovers(store) == []


def test_store_spool_limit(store: BlobStore) -> None:
    with store.spool(limit=10) as spool:
        spool.write(b"123456")
        with pytest.raises(SizeLimitExceeded) as info:
            spool.write(b"78901")
        assert info.value.limit == 10
        assert spool.size == 6
        spool.write(b"7890")  # exactly at the limit is fine
        path, digest, size = spool.finish()
        assert (digest, size) == (sha(b"1234567890"), 10)
        assert path.read_bytes() == b"1234567890"
        assert path.parent == store.spool_dir
        ref = store.put_file(path, sha256=digest, move=True)
    assert store.read_bytes(ref.sha256) == b"1234567890"
    assert leftovers(store) == []


def test_hashing_spool(tmp_path: Path) -> None:
    spool = HashingSpool(tmp_path, limit=3 * MIB)
    assert oct(spool.path.stat().st_mode & 0o777) == "0o600"
    chunk = os.urandom(MIB)
    for _ in range(3):
        spool.write(chunk)
    with pytest.raises(SizeLimitExceeded):
        spool.write(b"!")
    done = spool.finish()
    assert done == (spool.path, sha(chunk * 3), 3 * MIB)
    assert done.path.stat().st_size == 3 * MIB
    spool.discard()
    assert not done.path.exists()
    assert list(tmp_path.iterdir()) == []
    with HashingSpool(tmp_path) as spool2:
        spool2.write(b"abc")
    assert list(tmp_path.iterdir()) == []  # the context manager never leaks a temporary file
    with pytest.raises(ValueError, match="spool already finished or discarded"):
        spool2.write(b"more")


def test_spool_and_blob_folders_made_when_missing(tmp_path: Path) -> None:
    """The spool folder and a blob's two folders are created on first use only (issue 17: tried after the file
    operation fails, not before each one); the second blob of the same folder needs none."""
    with HashingSpool(tmp_path / "a" / "b") as spool:
        spool.write(b"x")
        path, digest, _size = spool.finish()
        store = FilesystemBlobStore(tmp_path / "blobs")
        ref = store.put_file(path, sha256=digest, move=True)
    assert (tmp_path / "blobs" / digest[:2] / digest[2:4] / digest).read_bytes() == b"x"
    assert ref.sha256 == digest
    assert list((tmp_path / "a" / "b").iterdir()) == []
    with pytest.raises(FileNotFoundError):  # a missing source is reported, not taken for a missing folder
        store.put_files([(tmp_path / "absent.part", sha(b"absent"))])


# -------------------------------------------------------------------------------- implementation details


_UMASK_SCRIPT = """
import os, sys
from pathlib import Path
os.umask(0o022)
from parafe.security.home_permissions import current_umask, restrict_umask
from parafe.storage.fs import FilesystemBlobStore
store = FilesystemBlobStore(Path(sys.argv[1]))
before = store.put_bytes(b"avant")
seen = current_umask()
restrict_umask()
after = store.put_bytes(b"apres")
mode = lambda ref: oct(store.local_path(ref.sha256).stat().st_mode & 0o777)
print(oct(seen), oct(current_umask()), mode(before), mode(after))
"""


def test_blob_modes_follow_the_umask_parafe_sets(tmp_path: Path) -> None:
    """The umask is read once per process (issue 17), so the value :func:`restrict_umask` sets must be the one
    the next blob gets: 0444 under umask 022, 0400 once ``parafe`` has restricted it to 077."""
    done = subprocess.run([sys.executable, "-c", _UMASK_SCRIPT, str(tmp_path / "blobs")], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0o22", "0o77", "0o444", "0o400"]


def test_filesystem_layout_and_modes(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    src = store.spool_dir / "upload.part"
    src.write_bytes(b"hello")
    inode = src.stat().st_ino
    ref = store.put_file(src, move=True)
    path = tmp_path / "blobs" / ref.sha256[:2] / ref.sha256[2:4] / ref.sha256
    assert store.local_path(ref.sha256) == path
    assert path.stat().st_ino == inode  # renamed/linked, not copied
    assert oct(path.stat().st_mode & 0o777) == "0o444"
    assert not src.exists()
    copied = store.put_bytes(b"world")
    assert oct(store.local_path(copied.sha256).stat().st_mode & 0o777) == "0o444"  # type: ignore[union-attr]
    # a stale temp file is swept
    stale = store.spool_dir / "spool-crashed.part"
    stale.write_bytes(b"x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = store.spool_dir / "spool-live.part"
    fresh.write_bytes(b"x")
    assert store.cleanup_tmp(older_than=3600) == 1
    assert leftovers(store) == ["spool-live.part"]


def test_filesystem_move_from_another_directory(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    other = tmp_path / "elsewhere"
    other.mkdir()
    src = other / "f.bin"
    src.write_bytes(b"payload")
    ref = store.put_file(src, sha256=sha(b"payload"), move=True)
    assert not src.exists()
    assert store.read_bytes(ref.sha256) == b"payload"


def test_open_store_from_settings(tmp_path: Path, moto_endpoint: str) -> None:
    fs = open_store(Settings(home=tmp_path / "home"))
    assert isinstance(fs, FilesystemBlobStore)
    assert fs.root == (tmp_path / "home").resolve() / "blobs"
    settings = Settings(
        home=tmp_path / "home", storage="s3", s3_endpoint_url=moto_endpoint, s3_bucket="parafe-settings",
        s3_access_key="testing", s3_secret_key="testing",
    )
    s3 = open_store(settings)
    from parafe.storage.s3 import S3BlobStore

    assert isinstance(s3, S3BlobStore)
    assert s3.spool_dir == settings.tmp_dir
    s3.ensure_bucket()
    ref = s3.put_bytes(b"via settings")
    assert s3.read_bytes(ref.sha256) == b"via settings"
