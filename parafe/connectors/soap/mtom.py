"""MTOM/XOP requests (``multipart/related``, as JAX-WS sends them with MTOM enabled): split into spooled parts.

Every MIME part goes to its own :class:`~parafe.storage.spool.HashingSpool` on disk; the root part (named by
the ``start`` parameter, else the first part) is the SOAP envelope, the others are attachments found by
``Content-ID`` when the envelope's base64 elements hold ``<xop:Include href="cid:…"/>``. Responses never use
MTOM (see :mod:`parafe.connectors.soap.codec`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from parafe.connectors.soap.envelope import Binary, bad_request
from parafe.domain.errors import E, ParafeError
from parafe.storage.spool import HashingSpool, SizeLimitExceeded

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_PARTS = 100
_READ = 64 * 1024


def is_multipart(content_type: str | None) -> bool:
    return bool(content_type) and parse_options_header(content_type)[0].lower() == b"multipart/related"


@dataclass
class MimeParts:
    root: Binary
    attachments: dict[str, Binary] = field(default_factory=dict)

    def discard(self) -> None:
        self.root.discard()
        for binary in self.attachments.values():
            binary.discard()


class _Collector:
    def __init__(self, tmp_dir: Path, limit: int) -> None:
        self.tmp_dir = tmp_dir
        self.limit = limit
        self.parts: list[tuple[str | None, Binary]] = []
        self.spool: HashingSpool | None = None
        self.content_id: str | None = None
        self.header_name = b""
        self.header_value = b""

    def on_part_begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise bad_request("trop de parties MIME")
        self.content_id = None
        self.spool = HashingSpool(self.tmp_dir, limit=self.limit, prefix="soap-mime-")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_name.strip().lower() == b"content-id":
            self.content_id = self.header_value.decode("latin-1").strip().strip("<>")
        self.header_name = b""
        self.header_value = b""

    def on_headers_finished(self) -> None:
        pass

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        assert self.spool is not None
        self.spool.write(data[start:end])

    def on_part_end(self) -> None:
        assert self.spool is not None
        path, sha256, size = self.spool.finish(fsync=False)
        self.parts.append((self.content_id, Binary(path, sha256, size)))
        self.spool = None

    def abort(self) -> None:
        if self.spool is not None:
            self.spool.discard()
        for _, binary in self.parts:
            binary.discard()


def split_related(source: BinaryIO, content_type: str, tmp_dir: Path, limit: int) -> MimeParts:
    """Split a ``multipart/related`` body into its root part and attachments (all on disk)."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise bad_request("paramètre boundary absent du type multipart/related")
    start = params.get(b"start", b"").decode("latin-1").strip().strip("<>") or None
    collector = _Collector(tmp_dir, limit)
    names = ("on_part_begin", "on_part_data", "on_part_end", "on_header_field", "on_header_value",
             "on_header_end", "on_headers_finished")
    callbacks = cast("MultipartCallbacks", {name: getattr(collector, name) for name in names})
    parser = MultipartParser(boundary.strip(b'"'), callbacks, max_header_count=32)
    try:
        while True:
            chunk = source.read(_READ)
            if not chunk:
                break
            parser.write(chunk)
        parser.finalize()
    except SizeLimitExceeded:
        collector.abort()
        raise ParafeError(E.FILE_TOO_LARGE) from None
    except MultipartParseError as exc:
        collector.abort()
        raise bad_request("corps multipart/related invalide", str(exc)) from None
    except BaseException:
        collector.abort()
        raise
    if not collector.parts:
        raise bad_request("corps multipart/related vide")
    root_index = 0
    if start is not None:
        matches = [i for i, (cid, _) in enumerate(collector.parts) if cid == start]
        root_index = matches[0] if matches else 0
    root = collector.parts[root_index][1]
    attachments = {cid: binary for i, (cid, binary) in enumerate(collector.parts) if i != root_index and cid}
    for i, (cid, binary) in enumerate(collector.parts):
        if i != root_index and not cid:
            binary.discard()
    return MimeParts(root, attachments)

