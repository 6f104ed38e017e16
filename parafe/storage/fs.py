"""Filesystem blob store (the default): ``root/ab/cd/<sha256>``, read-only files, atomic no-overwrite writes.

A write goes to a temporary file in ``root/tmp`` (same filesystem), is fsynced and made read-only (0o444 less
the umask: 0o400 under parafe), then hard-linked to its final name — ``link`` fails instead of overwriting, so
two writers of the same content race harmlessly — and the directory is fsynced. Filesystems without hard links
fall back to ``rename`` after an existence check (the only possible overwrite is by identical bytes).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from parafe.security.home_permissions import current_umask
from parafe.storage.base import (
    BlobInfo,
    BlobIntegrityError,
    BlobNotFound,
    BlobRef,
    BlobStore,
    check_sha256,
    file_sha256,
)
from parafe.storage.spool import CHUNK_SIZE, HashingSpool

READ_ONLY = 0o444  # blobs are never written twice; parafe's umask 077 makes them 0400
_HEX = frozenset("0123456789abcdef")
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_flusher: ThreadPoolExecutor | None = None
_flusher_lock = threading.Lock()


def _forget_flusher() -> None:
    global _flusher
    _flusher = None  # a forked child has none of its parent's threads


os.register_at_fork(after_in_child=_forget_flusher)


def _flush_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):  # gone already (a refused deposit): nothing to write
        _fsync_file(path)


def _fsync_file(path: Path, mode: int | None = None) -> None:
    """Write ``path``'s data to disk; then, with ``mode``, give it that mode (through the same descriptor)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        if mode is not None:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


class FilesystemBlobStore(BlobStore):
    """Blobs as files under ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"FilesystemBlobStore({str(self.root)!r})"

    @property
    def spool_dir(self) -> Path:
        return self.tmp

    def _path(self, sha256: str) -> Path:
        sha256 = check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    # -- writing

    def put_file(self, path: Path, *, sha256: str | None = None, move: bool = False) -> BlobRef:
        path = Path(path)
        if sha256 is not None:
            sha256 = check_sha256(sha256)
        if move:
            if sha256 is None:
                sha256, size = file_sha256(path)
            else:
                size = path.stat().st_size
            final = self._path(sha256)
            if final.exists():
                self._refresh(final)
                path.unlink(missing_ok=True)
                return BlobRef(sha256, size)
            _fsync_file(path, READ_ONLY & ~current_umask())
            try:
                self._install(path, final)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                # Not on our filesystem: copy (verifying) and drop the original.
                ref = self.put_file(path, sha256=sha256, move=False)
                path.unlink(missing_ok=True)
                return ref
            return BlobRef(sha256, size)

        with HashingSpool(self.tmp, prefix="put-") as spool, open(path, "rb") as src:
            spool.write_from(src, CHUNK_SIZE)
            tmp_path, actual, size = spool.finish()
            if sha256 is not None and actual != sha256:
                raise BlobIntegrityError(f"content of {path} has sha256 {actual}, not {sha256}")
            final = self._path(actual)
            if final.exists():
                self._refresh(final)
            else:
                os.chmod(tmp_path, READ_ONLY & ~current_umask())
                self._install(tmp_path, final)
        return BlobRef(actual, size)

    def start_flush(self, path: Path, sha256: str | None = None) -> None:
        """Start writing ``path``'s data to disk in a background thread, so that the checks a deposit runs
        meanwhile (rights, PDF, duplicates) overlap the disk's latency: its later ``put_file(path, move=True)``
        still fsyncs (durability does not depend on this hint) but finds the data written and only waits for
        the directory's journal commit. Nothing to do for content already stored (``sha256`` known): that file
        is only deleted."""
        global _flusher
        if sha256 is not None and self.exists(sha256):
            return
        with _flusher_lock:
            if _flusher is None:  # lazily, in the process that deposits (server processes are forked)
                _flusher = ThreadPoolExecutor(max_workers=4, thread_name_prefix="blob-flush")
        _flusher.submit(_flush_quietly, Path(path))

    def put_files(self, items: Sequence[tuple[Path, str | None]]) -> list[BlobRef]:
        """Several files handed over (``move=True``) behind one durability barrier: the data of every file is
        fsynced before any of them gets its name, then each directory touched is fsynced once. The directory
        fsyncs of one batch land in one journal commit (the first commits the links of all), where one
        :meth:`put_file` per blob commits once per blob."""
        refs: list[BlobRef] = []
        staged: list[tuple[Path, Path, str]] = []
        finals: set[Path] = set()
        for path, announced in items:
            path = Path(path)
            if announced is None:
                sha256, size = file_sha256(path)
            else:
                sha256, size = check_sha256(announced), path.stat().st_size
            refs.append(BlobRef(sha256, size))
            final = self._path(sha256)
            if final in finals or final.exists():
                if final not in finals:
                    self._refresh(final)
                path.unlink(missing_ok=True)
                continue
            finals.add(final)
            staged.append((path, final, sha256))
        for path, _final, _sha in staged:
            _fsync_file(path, READ_ONLY & ~current_umask())  # as put_file: after the data's fsync
        directories: dict[Path, None] = {}
        for path, final, sha256 in staged:
            try:
                directories.update(dict.fromkeys(self._link(path, final)))
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self.put_file(path, sha256=sha256, move=False)  # not on our filesystem: copy, then drop
                path.unlink(missing_ok=True)
        for directory in directories:
            _fsync_dir(directory)
        return refs

    def _install(self, tmp_path: Path, final: Path) -> None:
        """Give ``tmp_path`` the name ``final`` without ever replacing an existing blob; ``tmp_path`` is gone
        afterwards (unless the error is EXDEV)."""
        for directory in self._link(tmp_path, final):
            _fsync_dir(directory)

    def _link(self, tmp_path: Path, final: Path) -> list[Path]:
        """:meth:`_install` without the fsyncs: returns the directories to fsync (the blob's, and the parents
        of the directories created for it)."""
        created: list[Path] = []
        try:
            try:
                os.link(tmp_path, final)
            except FileNotFoundError:  # the blob's folders do not exist yet (tried after: one syscall per blob)
                if not os.path.exists(tmp_path):
                    raise
                created = self._make_dirs(final.parent)
                os.link(tmp_path, final)
        except FileExistsError:
            self._refresh(final)  # a concurrent writer of the same content won
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise
            created += self._make_dirs(final.parent)
            if final.exists():
                self._refresh(final)
            else:
                os.replace(tmp_path, final)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        return [final.parent, *(directory.parent for directory in created)]

    def _make_dirs(self, leaf: Path) -> list[Path]:
        created = []
        for directory in (leaf.parent, leaf):
            try:
                directory.mkdir()
                created.append(directory)
            except FileExistsError:
                pass
        return created

    @staticmethod
    def _refresh(final: Path) -> None:
        # Bump mtime so that the orphan sweeper's grace period covers the row about to reference it.
        with contextlib.suppress(OSError):
            os.utime(final)

    # -- reading

    def open(self, sha256: str) -> BinaryIO:
        try:
            return open(self._path(sha256), "rb")
        except FileNotFoundError:
            raise BlobNotFound(sha256) from None

    def local_path(self, sha256: str) -> Path | None:
        path = self._path(sha256)
        return path if path.is_file() else None

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def stat(self, sha256: str) -> BlobInfo:
        sha256 = check_sha256(sha256)
        try:
            st = self._path(sha256).stat()
        except FileNotFoundError:
            raise BlobNotFound(sha256) from None
        return BlobInfo(sha256, st.st_size, dt.datetime.fromtimestamp(st.st_mtime, dt.UTC))

    # -- enumeration and sweeping

    def iter_refs(self) -> Iterator[str]:
        for level1 in _scandir(self.root):
            if len(level1.name) != 2 or not set(level1.name) <= _HEX or not level1.is_dir():
                continue
            for level2 in _scandir(Path(level1.path)):
                if len(level2.name) != 2 or not set(level2.name) <= _HEX or not level2.is_dir():
                    continue
                for entry in _scandir(Path(level2.path)):
                    name = entry.name
                    if len(name) == 64 and name[:2] == level1.name and name[2:4] == level2.name and set(
                        name
                    ) <= _HEX:
                        yield name

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(sha256))

    def cleanup_tmp(self, older_than: float = 3600.0) -> int:
        limit = time.time() - older_than
        removed = 0
        for entry in _scandir(self.tmp):
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < limit:
                    os.unlink(entry.path)
                    removed += 1
                elif entry.is_dir(follow_symlinks=False) and entry.stat().st_mtime < limit:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _scandir(path: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            yield from it
    except FileNotFoundError:
        return
