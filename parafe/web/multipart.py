"""Streaming ``multipart/form-data`` parser shared by the REST and OSS connectors and the portal.

File parts go straight to disk through :class:`parafe.storage.spool.HashingSpool` (hashed while written, the
size limit enforced while reading: a 101 MiB stream is cut at 100 MiB, never held in memory). Text fields are
capped at 64 KiB. Real-client quirks are accepted: parts without their own Content-Type, repeated fields
(``annexes``), quoted or unquoted boundaries.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from parafe.domain.errors import E, ParafeError
from parafe.services.documents.deposit import Upload
from parafe.storage.spool import HashingSpool, SizeLimitExceeded

FIELD_LIMIT = 64 * 1024
MAX_PARTS = 200
DRAIN_LIMIT = 64 * 1024 * 1024  # past the size limit, read (and drop) this much more so the client sees the 413


@dataclass
class FormData:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[Upload]] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    def file(self, name: str) -> Upload | None:
        values = self.files.get(name)
        return values[0] if values else None

    def all_files(self) -> list[Upload]:
        return [u for uploads in self.files.values() for u in uploads]

    def discard(self) -> None:
        for upload in self.all_files():
            upload.path.unlink(missing_ok=True)


class _Collector:
    def __init__(self, tmp_dir: Path, limit: int) -> None:
        self.tmp_dir = tmp_dir
        self.limit = limit
        self.form = FormData()
        self.parts = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._filename: str | bytes | None = None
        self._buffer = bytearray()
        self._spool: HashingSpool | None = None

    # python-multipart callbacks
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise ParafeError(E.BAD_REQUEST, reason="trop de parties dans le formulaire")
        self._disposition = b""
        self._name = ""
        self._filename = None
        self._buffer = bytearray()
        self._spool = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _kind, options = parse_options_header(self._disposition)
        raw_name = options.get(b"name")
        if raw_name is None:
            raise ParafeError(E.BAD_REQUEST, reason="partie de formulaire sans nom")
        self._name = raw_name.decode("utf-8", "replace")
        if b"filename*" in options:
            value = options[b"filename*"]
            self._filename = value.split(b"''", 1)[-1]
        elif b"filename" in options:
            self._filename = options[b"filename"]
        if self._filename is not None:
            if isinstance(self._filename, bytes):
                with contextlib.suppress(UnicodeDecodeError):  # the deposit service refuses it with BAD_CHARACTERS
                    self._filename = self._filename.decode("utf-8")
            self._spool = HashingSpool(self.tmp_dir, limit=self.limit)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._spool is not None:
            self._spool.write(data[start:end])
        else:
            self._buffer += data[start:end]
            if len(self._buffer) > FIELD_LIMIT:
                raise ParafeError(E.BAD_REQUEST, reason=f"champ « {self._name} » trop long")

    def on_part_end(self) -> None:
        if self._spool is not None:
            path, sha256, size = self._spool.finish(fsync=False)  # the blob store fsyncs what it keeps
            assert self._filename is not None
            self.form.files.setdefault(self._name, []).append(
                Upload(path=path, sha256=sha256, size=size, filename=self._filename))
            self._spool = None
        else:
            self.form.fields.setdefault(self._name, []).append(self._buffer.decode("utf-8", "replace"))

    def abort(self) -> None:
        if self._spool is not None:
            self._spool.discard()
        self.form.discard()


async def _drain(stream: AsyncIterator[bytes]) -> None:
    """Discard what the client is still sending (bounded), so that it reads our error instead of a reset."""
    drained = 0
    async for chunk in stream:
        drained += len(chunk)
        if drained > DRAIN_LIMIT:
            break


async def parse_form(
    content_type: str | None, stream: AsyncIterator[bytes], tmp_dir: Path, limit: int,
) -> FormData:
    """Parse a multipart body from ``stream``; raises :class:`ParafeError` (413 past ``limit``, 400 if bad)."""
    if not content_type:
        raise ParafeError(E.BAD_REQUEST, reason="corps multipart/form-data attendu")
    ctype, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ParafeError(E.BAD_REQUEST, reason="corps multipart/form-data attendu")
    collector = _Collector(tmp_dir, limit)
    callbacks = {name: getattr(collector, name) for name in (
        "on_part_begin", "on_part_data", "on_part_end", "on_header_field", "on_header_value", "on_header_end",
        "on_headers_finished")}
    parser = MultipartParser(boundary.strip(b'"'), callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in stream:
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except SizeLimitExceeded:
        collector.abort()
        await _drain(stream)
        raise ParafeError(E.FILE_TOO_LARGE) from None
    except MultipartParseError as exc:
        collector.abort()
        raise ParafeError(E.BAD_REQUEST, reason="corps multipart invalide", detail=str(exc)) from None
    except BaseException:
        collector.abort()
        raise
    return collector.form
