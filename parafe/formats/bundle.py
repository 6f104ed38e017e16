"""Zip bundles of a deposit (API-REFERENCE §6.6, spec §2.7 / §4.1.1): ``bonjour.pdf.zip`` holds the main
document ``bonjour.pdf``, optional annexes and an optional ``METAS_bonjour.pdf.xml``, all at the root.

Everything is checked from the central directory BEFORE anything is extracted: names (no path, no ``..``, no
directory, NFC and the deposit name rules), entry types (no symbolic link or other special file, no nested zip,
no encryption), entry count, declared sizes and compression ratios, main document present, annex extensions.
Extraction then counts the bytes really produced (headers can lie) and stops at the limits, so a zip bomb
costs bounded memory (64 KiB buffers) and bounded disk (``max_total_bytes``).
"""

from __future__ import annotations

import os
import stat
import struct
import tempfile
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from parafe.domain.deposit import NAME_LIMIT_WS, check_annex_name, extension_of, normalise_name
from parafe.domain.errors import E, ParafeError
from parafe.formats.metadata import metas_target

_CHUNK = 64 * 1024
_UTF8_FLAG = 0x800
_ENCRYPTED_FLAG = 0x1
_UNIX = 3  # ZipInfo.create_system of Unix-made archives: external_attr's high 16 bits are st_mode
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
# Office and OpenDocument files are zip containers by design; they are documents, not nested archives.
ZIP_CONTAINER_EXTENSIONS = frozenset({"docx", "docm", "xlsx", "xlsm", "pptx", "ppsx", "thmx", "odt", "ods",
                                      "odp", "ots", "ott", "odg"})
_SUPPORTED_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# Small files compress a lot legitimately (a 10 KiB blank form can deflate 300:1): the ratio limit applies
# from this many uncompressed bytes on.
RATIO_FLOOR = 1024 * 1024
# Generous size of one central-directory record (46-byte header + name + extra fields + comment).
_CD_BYTES_PER_ENTRY = 4096


@dataclass
class Bundle:
    """An extracted bundle: the main document, the annexes (name, path) in archive order, the METAS file."""

    main: Path
    main_name: str
    annexes: list[tuple[str, Path]] = field(default_factory=list)
    metas: Path | None = None


def is_bundle_name(filename: str) -> bool:
    """Whether a deposited name designates a bundle: ``.zip`` whose stem itself has an extension
    (``bonjour.pdf.zip``); a plain ``archive.zip`` is an ordinary file."""
    if not filename.lower().endswith(".zip"):
        return False
    return extension_of(filename[:-4]) != ""


def main_name_of(zip_name: str) -> str:
    """The main document's name for a bundle name: the name without its ``.zip`` suffix, NFC."""
    name = unicodedata.normalize("NFC", zip_name)
    return name[:-4] if name.lower().endswith(".zip") else name


def _refuse(reason: str, detail: str) -> ParafeError:
    return ParafeError(E.BUNDLE_INVALID, detail=detail, reason=reason)


def _entry_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as text: UTF-8 when flagged; otherwise UTF-8 if it decodes, else the zip default cp437."""
    if info.flag_bits & _UTF8_FLAG:
        return info.filename
    raw = info.filename.encode("cp437")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return info.filename


def _directory_size(zip_path: Path) -> tuple[int, int] | None:
    """(entry count, central directory size) from the end-of-central-directory records, read before
    :mod:`zipfile` builds one object per entry; None when there is no such record (not a zip)."""
    with open(zip_path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        tail_len = min(size, 22 + 65535)
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return None
        entries, cd_size = struct.unpack("<10xHI6x", tail[at:at + 22])
        if entries != 0xFFFF and cd_size != 0xFFFFFFFF:
            return entries, cd_size
        locator = tail[at - 20:at] if at >= 20 else b""
        if not locator.startswith(b"PK\x06\x07"):
            return entries, cd_size
        (offset,) = struct.unpack("<8xQ4x", locator)
        if offset + 56 > size:
            return None
        fh.seek(offset)
        record = fh.read(56)
        if not record.startswith(b"PK\x06\x06"):
            return None
        entries64, cd_size64 = struct.unpack("<32xQQ8x", record)
        return entries64, cd_size64


def _check_entry(info: zipfile.ZipInfo, name: str) -> None:
    """Path, type and encryption checks of one central-directory entry (before any extraction)."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise _refuse("chemin absolu interdit", f"absolute path {name!r}")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise _refuse("chemin interdit (« .. »)", f"path traversal in {name!r}")
    if info.is_dir() or "/" in name or "\\" in name:
        raise _refuse("tous les fichiers doivent être posés à la racine (aucun répertoire ne doit être présent)",
                      f"directory or path in entry {name!r}")
    if info.create_system == _UNIX:
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _refuse("lien symbolique interdit", f"symbolic link {name!r}")
        if mode and stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            raise _refuse("fichier spécial interdit", f"entry {name!r} is not a regular file (mode {mode:o})")
    if info.flag_bits & _ENCRYPTED_FLAG:
        raise _refuse("archive chiffrée", f"entry {name!r} is encrypted")
    if info.compress_type not in _SUPPORTED_METHODS:
        raise _refuse("méthode de compression non prise en charge",
                      f"entry {name!r} uses compression method {info.compress_type}")
    if extension_of(name) == "zip":
        raise _refuse("archive imbriquée interdite", f"nested zip {name!r}")


def open_bundle(
    zip_path: Path,
    zip_name: str,
    workdir: Path,
    *,
    max_total_bytes: int,
    max_ratio: int,
    max_entries: int,
    name_limit: int = NAME_LIMIT_WS,
) -> Bundle:
    """Check and extract a bundle into ``workdir`` (which must exist; extracted files get unique generated
    names there, so several bundles may share it).

    Raises ``EMPTY_FILE`` (empty zip or empty entry), ``BUNDLE_INVALID`` (not a zip / corrupt, too many
    entries, bad path, directory, link, nested zip, encryption, sizes or ratio over the limits, duplicate
    names, lying headers), the name errors of :func:`parafe.domain.deposit.normalise_name` for entry names
    (``name_limit`` characters), ``BUNDLE_MAIN_MISSING`` and ``EXTENSION_NOT_ALLOWED`` (annexes, §1.8). Files
    already extracted are removed when it raises.
    """
    if zip_path.stat().st_size == 0:
        raise ParafeError(E.EMPTY_FILE, detail="zip bundle is empty")
    main_name = main_name_of(zip_name)
    directory = _directory_size(zip_path)
    if directory is None:
        raise _refuse("fichier ZIP illisible", "no end-of-central-directory record: not a zip")
    if directory[0] > max_entries or directory[1] > max_entries * _CD_BYTES_PER_ENTRY:
        raise _refuse("trop de fichiers dans l'archive",
                      f"{directory[0]} entries / {directory[1]} directory bytes for at most {max_entries} entries")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise _refuse("fichier ZIP illisible", f"not a readable zip: {exc}") from None
    with archive:
        infos = archive.infolist()
        if not infos:
            raise ParafeError(E.EMPTY_FILE, detail="zip bundle holds no file")
        if len(infos) > max_entries:
            raise _refuse("trop de fichiers dans l'archive", f"{len(infos)} entries > {max_entries}")
        entries: list[tuple[str, zipfile.ZipInfo]] = []
        names: set[str] = set()
        declared_total = 0
        for info in infos:
            raw_name = _entry_name(info)
            _check_entry(info, raw_name)
            name = normalise_name(raw_name, name_limit)
            if name in names:
                raise _refuse("noms de fichiers en double", f"duplicate entry {name!r}")
            names.add(name)
            declared_total += info.file_size
            if declared_total > max_total_bytes:
                raise _refuse("archive trop volumineuse une fois décompressée",
                              f"declared uncompressed size over {max_total_bytes} bytes")
            if info.file_size > RATIO_FLOOR and info.file_size > max_ratio * max(info.compress_size, 1):
                raise _refuse("taux de compression suspect",
                              f"entry {name!r}: {info.file_size} bytes from {info.compress_size}")
            entries.append((name, info))
        if main_name not in names:
            raise ParafeError(E.BUNDLE_MAIN_MISSING, detail=f"{main_name!r} not in the archive", name=main_name)
        metas_name: str | None = None
        for name, _info in entries:
            if name == main_name:
                continue
            if metas_name is None and metas_target(name) == main_name:
                metas_name = name
                continue
            check_annex_name(name)
        return _extract(archive, entries, main_name, metas_name, workdir, max_total_bytes, max_ratio)


def _extract(archive: zipfile.ZipFile, entries: list[tuple[str, zipfile.ZipInfo]], main_name: str,
             metas_name: str | None, workdir: Path, max_total_bytes: int, max_ratio: int) -> Bundle:
    written: list[Path] = []
    total = 0
    try:
        bundle: Bundle | None = None
        annexes: list[tuple[str, Path]] = []
        metas: Path | None = None
        for index, (name, info) in enumerate(entries):
            ext = extension_of(name)
            suffix = f".{ext}" if ext.isascii() and ext.isalnum() and len(ext) <= 10 else ""
            fd, created = tempfile.mkstemp(dir=workdir, prefix=f"bundle-{index:04d}-", suffix=suffix)
            target = Path(created)
            written.append(target)  # only files this call created are removed on failure
            size = 0
            with os.fdopen(fd, "wb") as dst, archive.open(info) as src:
                first = True
                while True:
                    chunk = src.read(_CHUNK)
                    if not chunk:
                        break
                    if first:
                        first = False
                        if chunk.startswith(_ZIP_MAGICS) and ext not in ZIP_CONTAINER_EXTENSIONS:
                            raise _refuse("archive imbriquée interdite", f"entry {name!r} is a zip archive")
                    size += len(chunk)
                    total += len(chunk)
                    if size > info.file_size:
                        raise _refuse("archive corrompue", f"entry {name!r} inflates past its declared size")
                    if total > max_total_bytes:
                        raise _refuse("archive trop volumineuse une fois décompressée",
                                      f"more than {max_total_bytes} bytes extracted")
                    if size > RATIO_FLOOR and size > max_ratio * max(info.compress_size, 1):
                        raise _refuse("taux de compression suspect", f"entry {name!r} inflates too much")
                    dst.write(chunk)
            if size != info.file_size:
                raise _refuse("archive corrompue", f"entry {name!r}: {size} bytes, {info.file_size} declared")
            if size == 0:
                raise ParafeError(E.EMPTY_FILE, detail=f"entry {name!r} of the zip bundle is empty")
            if name == main_name:
                bundle = Bundle(main=target, main_name=name)
            elif name == metas_name:
                metas = target
            else:
                annexes.append((name, target))
        if bundle is None:  # pragma: no cover - presence is checked before extraction
            raise ParafeError(E.BUNDLE_MAIN_MISSING, detail=f"{main_name!r} not extracted", name=main_name)
        bundle.annexes = annexes
        bundle.metas = metas
        return bundle
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        _cleanup(written)
        raise _refuse("archive corrompue", f"corrupt entry: {exc}") from None
    except BaseException:
        _cleanup(written)
        raise


def _cleanup(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
