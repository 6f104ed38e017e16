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
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NamedTuple

CHUNK_SIZE = 1024 * 1024
SPOOL_PREFIX = "spool-"


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
        self.directory.mkdir(parents=True, exist_ok=True)
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()
        fd, name = tempfile.mkstemp(dir=self.directory, prefix=prefix, suffix=".part")
        self.path = Path(name)
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

    def write_all(self, chunks: Iterable[bytes]) -> int:
        return sum(self.write(c) for c in chunks)

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

    def __enter__(self) -> HashingSpool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # The file survives the block only if a caller took it away (e.g. moved it into a store).
        self.discard()
