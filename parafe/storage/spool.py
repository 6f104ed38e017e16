"""Spooling uploads to disk while hashing them: :class:`HashingSpool`.

Every connector streams request bodies through a spool: bytes go to a temporary file (never all in memory),
SHA-256 and size are computed on the way, and an optional byte limit raises :class:`SizeLimitExceeded` the
moment it would be exceeded (nothing past the limit is written). The finished file can then be handed to
``BlobStore.put_file(path, sha256=..., move=True)``; spool in ``store.spool_dir`` so that the move is a
rename.

Typical use::

    with HashingSpool(store.spool_dir, limit=settings.max_upload_bytes) as spool:
        for chunk in body:
            spool.write(chunk)
        path, sha256, size = spool.finish()
        ref = store.put_file(path, sha256=sha256, move=True)
    # leaving the block deletes the temporary file if it is still there

A killed process leaves its ``*.part`` files behind: :func:`clean_leftovers` (run at start by ``parafe
serve``/``worker``/``init``) removes those no live process holds locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NamedTuple

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
SPOOL_PREFIX = "spool-"
# A spool file younger than this is never swept: between mkstemp() and flock() it is briefly unlocked.
LEFTOVER_GRACE_SECONDS = 60.0


class SizeLimitExceeded(Exception):
    """More bytes than the limit were offered to a spool."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"size limit of {limit} bytes exceeded")
        self.limit = limit


class SpooledFile(NamedTuple):
    """A finished spool: the temporary file (now owned by the caller), its SHA-256 (hex) and size."""

    path: Path
    sha256: str
    size: int


class HashingSpool:
    """A temporary file in ``directory`` that hashes (SHA-256) and counts what is written to it."""

    def __init__(
        self, directory: Path | str, *, limit: int | None = None, prefix: str = SPOOL_PREFIX
    ) -> None:
        self.directory = Path(directory)
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()
        try:  # the folder is there but for the first spool of a new home (issue 17: no mkdir per request)
            fd, name = tempfile.mkstemp(dir=self.directory, prefix=prefix, suffix=".part")
        except FileNotFoundError:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.directory, prefix=prefix, suffix=".part")
        self.path = Path(name)
        # The file stays locked while this spool lives (the lock is held by a duplicate descriptor, beyond
        # finish(), until discard()): the start-up sweep (:func:`clean_leftovers`) removes only unlocked files.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock_fd: int | None = os.dup(fd)
        self._fh: BinaryIO | None = os.fdopen(fd, "wb")
        self._result: SpooledFile | None = None

    # writing

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``; raises :class:`SizeLimitExceeded` (and writes nothing) past the limit."""
        if self._fh is None:
            raise ValueError("spool already finished or discarded")
        n = len(data)
        if self.limit is not None and self.size + n > self.limit:
            raise SizeLimitExceeded(self.limit)
        self._fh.write(data)
        self._hash.update(data)
        self.size += n
        return n

    def write_from(self, stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> int:
        """Copy a readable binary stream into the spool in bounded chunks; returns the bytes copied."""
        total = 0
        while True:
            chunk = stream.read(chunk_size)
            if not chunk:
                return total
            total += self.write(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    # ending

    def finish(self, *, fsync: bool = True) -> SpooledFile:
        """Close (and fsync) the file; the caller now owns ``path`` (to move into a store, or to delete)."""
        if self._result is not None:
            return self._result
        if self._fh is None:
            raise ValueError("spool discarded")
        try:
            self._fh.flush()
            if fsync:
                os.fsync(self._fh.fileno())
        finally:
            self._fh.close()
            self._fh = None
        self._result = SpooledFile(self.path, self._hash.hexdigest(), self.size)
        return self._result

    def discard(self) -> None:
        """Close and delete the temporary file (idempotent)."""
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._release()

    def _release(self) -> None:
        fd = getattr(self, "_lock_fd", None)  # absent when __init__ failed
        if fd is not None:
            self._lock_fd = None
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:  # a finished spool whose file was taken away and never discarded
        self._release()

    def __enter__(self) -> HashingSpool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # The file survives the block only if a caller took it away (e.g. moved it into a store).
        self.discard()


def clean_leftovers(directory: Path | str, *, grace: float = LEFTOVER_GRACE_SECONDS) -> int:
    """Remove the ``*.part`` spool files a killed process left in ``directory``; returns how many.

    A file is removed only when no live process holds its lock (every :class:`HashingSpool` of a running
    server, worker or command keeps its file locked until it is discarded, whichever process and node of the
    same home it runs in) and it was last written more than ``grace`` seconds ago. Safe to run while other
    processes serve: each sweeper takes the file's lock before unlinking it.
    """
    limit = time.time() - grace
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.endswith(".part") or not entry.is_file(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live process is writing or holding it
            if os.fstat(fd).st_mtime >= limit:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
        finally:
            os.close(fd)
    if removed:
        log.warning("spool: removed %d abandoned temporary file(s) from %s", removed, directory)
    return removed
