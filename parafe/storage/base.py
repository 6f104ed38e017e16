"""The blob store interface: write-once, content-addressed (SHA-256) storage of document bytes.

Rules shared by every implementation (docs/spec/DESIGN.md, "Blobs are write-once and content-addressed"):

- a blob is named by the lower-case hex SHA-256 of its content; putting content that is already stored is a
  no-op returning the same :class:`BlobRef` (never an overwrite) — it only refreshes the blob's modification
  time, so that the orphan sweeper's grace period also protects a blob that a new row is about to reference;
- a blob is fully written (fsync + rename, or S3 conditional put) before ``put_*`` returns, i.e. before the
  transaction that references it commits; an orphan blob is harmless and swept by :meth:`BlobStore.delete`
  (only the sweeper deletes, and only blobs unreferenced and older than its grace period — and the definitive
  delete/purge of ``parafe.services.documents.erasure``, only blobs no row references any more);
- reads stream (:meth:`BlobStore.open`); nothing requires a whole blob in memory except :meth:`read_bytes`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from parafe.storage.spool import CHUNK_SIZE, HashingSpool

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class BlobError(Exception):
    """Base class of blob store errors."""


class BlobNotFound(BlobError, LookupError):
    """No blob with this SHA-256."""


class InvalidBlobId(BlobError, ValueError):
    """Not a lower-case hex SHA-256."""


class BlobIntegrityError(BlobError):
    """The content does not match the SHA-256 the caller announced."""


@dataclass(frozen=True)
class BlobRef:
    """What a database row keeps about a blob."""

    sha256: str
    size: int


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob with its size and last modification (or refresh) time, for the orphan sweeper."""

    sha256: str
    size: int
    modified: dt.datetime


def check_sha256(value: str) -> str:
    """``value`` if it is a SHA-256 in lower-case hex (upper case is folded), else :class:`InvalidBlobId`."""
    if not isinstance(value, str):
        raise InvalidBlobId(f"not a sha256: {value!r}")
    v = value.lower()
    if not _SHA256_RE.fullmatch(v):
        raise InvalidBlobId(f"not a sha256: {value!r}")
    return v


def is_sha256(value: str) -> bool:
    """True for a lower-case hex SHA-256."""
    return bool(_SHA256_RE.fullmatch(value))


def file_sha256(path: Path, chunk_size: int = CHUNK_SIZE) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in bounded chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class BlobStore(ABC):
    """Write-once, SHA-256-addressed blob storage (filesystem or S3)."""

    @property
    @abstractmethod
    def spool_dir(self) -> Path:
        """Where to spool uploads so that ``put_file(..., move=True)`` is cheapest (same filesystem)."""

    # -- writing

    @abstractmethod
    def put_file(self, path: Path, *, sha256: str | None = None, move: bool = False) -> BlobRef:
        """Store the content of ``path``.

        ``sha256``: the hash computed while the caller streamed the file (e.g. by :class:`HashingSpool`);
        without it the file is hashed here. With ``move=False`` an announced hash is verified (the file is
        read anyway) and a mismatch raises :class:`BlobIntegrityError`; with ``move=True`` it is trusted.
        ``move=True`` hands the file over: it is renamed into the store when possible and, in every
        successful case, no longer exists at ``path`` afterwards.
        """

    def start_flush(self, path: Path, sha256: str | None = None) -> None:  # noqa: B027 - an optional hint
        """A hint: ``path`` (of content ``sha256`` when known) will be handed to :meth:`put_file` soon; a store
        may start making it durable. Nothing to do by default."""

    def put_files(self, items: Sequence[tuple[Path, str | None]]) -> list[BlobRef]:
        """Store several files handed over as with ``put_file(path, sha256=…, move=True)`` (``None``: hash
        here); a store may make them durable together (one barrier instead of one per file)."""
        return [self.put_file(Path(path), sha256=sha256, move=True) for path, sha256 in items]

    def spool(self, limit: int | None = None) -> HashingSpool:
        """A :class:`HashingSpool` in :attr:`spool_dir`."""
        return HashingSpool(self.spool_dir, limit=limit)

    def put_stream(self, stream: BinaryIO, *, limit: int | None = None) -> BlobRef:
        """Store a readable binary stream (hashed while spooled to a temporary file; bounded memory)."""
        with self.spool(limit) as spool:
            spool.write_from(stream)
            path, sha256, _size = spool.finish(fsync=False)  # put_file(move=True) makes it durable
            return self.put_file(path, sha256=sha256, move=True)

    def put_bytes(self, data: bytes) -> BlobRef:
        with self.spool() as spool:
            spool.write(data)
            path, sha256, _size = spool.finish(fsync=False)  # put_file(move=True) makes it durable
            return self.put_file(path, sha256=sha256, move=True)

    # -- reading

    @abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """A streaming reader (close it, or use ``with``); :class:`BlobNotFound` if unknown."""

    def read_bytes(self, sha256: str) -> bytes:
        with self.open(sha256) as fh:
            return fh.read()

    def copy_to(self, sha256: str, dest: Path) -> Path:
        """Write the blob to ``dest`` (streamed), e.g. for tools that need a file."""
        with self.open(sha256) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK_SIZE)
        return Path(dest)

    def local_path(self, sha256: str) -> Path | None:
        """The blob's read-only file when the store is a local filesystem (zero-copy responses), else None."""
        return None

    @abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abstractmethod
    def stat(self, sha256: str) -> BlobInfo:
        """Size and modification time; :class:`BlobNotFound` if unknown."""

    def size(self, sha256: str) -> int:
        return self.stat(sha256).size

    # -- enumeration and sweeping

    @abstractmethod
    def iter_refs(self) -> Iterator[str]:
        """Every stored SHA-256 (no particular order)."""

    def iter_blobs(self) -> Iterator[BlobInfo]:
        for sha256 in self.iter_refs():
            with contextlib.suppress(BlobNotFound):
                yield self.stat(sha256)

    @abstractmethod
    def delete(self, sha256: str) -> None:
        """Remove a blob (orphan sweeper, definitive delete/purge); unknown blobs are ignored."""

    def cleanup_tmp(self, older_than: float = 3600.0) -> int:
        """Remove temporary files left by crashed writers (older than ``older_than`` seconds)."""
        return 0
