"""Parsing of untrusted XML (deposits, metadata, acknowledgements) without DTDs, entities or network access.

Every document is first scanned up to its root start tag by a tree-less parser that refuses any DOCTYPE
(hence any entity declaration: XXE, billion laughs) before libxml2 processes it; only then is the document
parsed with ``resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False``.

Two documented exceptions, both safe only because the DOCTYPE was refused first (no entity can exist):
``allow_huge_text`` (``huge_tree=True``: a PES_PJ attachment is one base64 text node, often over libxml2's
10,000,000-character limit) and, for streaming validation, ``resolve_entities="internal"`` (works around an
lxml bug that loses well-formedness errors, see :func:`iterparse_untrusted`).

Large files (PES up to 100 MiB) are read with :func:`iterparse_untrusted` and :func:`release`, which keep the
in-memory tree down to the current path plus the parser's read-ahead batch.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from lxml import etree

from parafe.domain.errors import E, ParafeError

Source = bytes | Path | BinaryIO

# A legitimate prolog (XML declaration, comments, processing instructions) is tiny: refuse to look further.
MAX_PROLOG_BYTES = 1024 * 1024
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Prolog:
    """What the scan up to the root start tag saw."""

    root_tag: str  # Clark notation: "{namespace}local" or "local"
    root_attrib: dict[str, str] = field(default_factory=dict)
    encoding: str = "UTF-8"  # as declared (or implied by a BOM); "UTF-8" by default

    @property
    def root_local_name(self) -> str:
        return etree.QName(self.root_tag).localname

    @property
    def root_namespace(self) -> str | None:
        return etree.QName(self.root_tag).namespace


class _DoctypeFound(Exception):
    pass


class _RootReached(Exception):
    def __init__(self, tag: str, attrib: dict[str, str]) -> None:
        super().__init__(tag)
        self.tag = tag
        self.attrib = attrib


class _PrologTarget:
    """lxml parser target that stops at the DOCTYPE (refused) or at the root start tag (done)."""

    def doctype(self, name: str | None, pubid: str | None, system: str | None) -> None:
        raise _DoctypeFound(name or "")

    def start(self, tag: str, attrib: Any, nsmap: Any = None) -> None:
        raise _RootReached(tag, dict(attrib))

    def end(self, tag: str) -> None:  # pragma: no cover - never reached, start() stops first
        pass

    def data(self, data: str) -> None:
        pass

    def comment(self, text: str) -> None:
        pass

    def pi(self, target: str, data: str | None = None) -> None:
        pass

    def close(self) -> None:
        return None


def _parser_options(huge: bool = False) -> dict[str, Any]:
    return {
        "resolve_entities": False,
        "no_network": True,
        "load_dtd": False,
        "dtd_validation": False,
        "huge_tree": huge,
    }


def _chunks(source: Source, limit: int) -> Generator[bytes, None, None]:
    """At most ``limit`` bytes of ``source``, in chunks; file objects are rewound afterwards."""
    if isinstance(source, bytes):
        for start in range(0, min(len(source), limit), _CHUNK):
            yield source[start:min(start + _CHUNK, limit)]
        return
    if isinstance(source, Path):
        with open(source, "rb") as fh:
            yield from _chunks(fh, limit)
        return
    position = source.tell()
    try:
        read = 0
        while read < limit:
            chunk = source.read(min(_CHUNK, limit - read))
            if not chunk:
                break
            read += len(chunk)
            yield chunk
    finally:
        source.seek(position)


def check_prolog(source: Source, *, max_bytes: int = MAX_PROLOG_BYTES) -> Prolog:
    """Scan ``source`` up to its root start tag; nothing after it is read.

    Raises ``XML_UNSAFE`` for any DOCTYPE (internal subset, external DTD, entity declarations) and
    ``XML_MALFORMED`` when the document is not well-formed before its root or has no root within
    ``max_bytes``. File objects must be seekable; they are rewound.
    """
    parser = etree.XMLParser(target=_PrologTarget(), **_parser_options())
    seen = 0
    head = b""
    chunks = _chunks(source, max_bytes)
    try:
        for chunk in chunks:
            if not seen:
                head = chunk[:256]
            seen += len(chunk)
            parser.feed(chunk)
        if seen < max_bytes:
            parser.close()
    except _DoctypeFound as exc:
        raise ParafeError(E.XML_UNSAFE, detail=f"DOCTYPE declaration ({exc}) refused") from None
    except _RootReached as root:
        return Prolog(root.tag, root.attrib, _encoding(head))
    except etree.XMLSyntaxError as exc:
        raise ParafeError(E.XML_MALFORMED, detail=_describe(exc)) from None
    finally:
        chunks.close()  # closes the file / rewinds the stream now, not when the generator is collected
    if seen >= max_bytes:
        raise ParafeError(E.XML_MALFORMED, detail=f"no root element within the first {max_bytes} bytes")
    raise ParafeError(E.XML_MALFORMED, detail="no root element")


_DECLARED_ENCODING = re.compile(rb"""^<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")
_BOMS = ((codecs.BOM_UTF8, "UTF-8"), (codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def _encoding(head: bytes) -> str:
    """The document's encoding from its BOM or XML declaration (ASCII-compatible encodings)."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            if name != "UTF-8":
                return name
            head = head[len(bom):]
            break
    match = _DECLARED_ENCODING.match(head)
    return match.group(1).decode("ascii") if match else "UTF-8"


def _describe(exc: etree.XMLSyntaxError) -> str:
    msg = getattr(exc, "msg", None) or str(exc)
    line = getattr(exc, "lineno", None)
    return f"line {line}: {msg}" if line else str(msg)


def _refuse_dtd(tree: etree._ElementTree) -> None:
    info = tree.docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise ParafeError(E.XML_UNSAFE, detail="DOCTYPE declaration refused")


def parse_untrusted(source: Source, *, allow_huge_text: bool = False) -> etree._ElementTree:
    """Parse an untrusted XML document into a tree.

    Raises ``XML_UNSAFE`` (any DOCTYPE / entity declaration, checked before parsing) or ``XML_MALFORMED``.
    ``allow_huge_text`` lifts libxml2's 10,000,000-character limit on one text node (base64 attachments of a
    PES_PJ); it is safe only because the prolog scan has already refused any DTD, so no entity can exist.
    Meant for documents that fit in memory; use :func:`iterparse_untrusted` for large files.
    """
    if not isinstance(source, (bytes, Path)) and not source.seekable():
        source = source.read()
    check_prolog(source)
    parser = etree.XMLParser(**_parser_options(huge=allow_huge_text))
    try:
        if isinstance(source, bytes):
            tree = etree.parse(io.BytesIO(source), parser)
        elif isinstance(source, Path):
            with open(source, "rb") as fh:
                tree = etree.parse(fh, parser)
        else:
            tree = etree.parse(source, parser)
    except etree.XMLSyntaxError as exc:
        raise ParafeError(E.XML_MALFORMED, detail=_describe(exc)) from None
    _refuse_dtd(tree)
    return tree


def iterparse_untrusted(
    path: Path,
    events: Iterable[str] = ("end",),
    *,
    schema: etree.XMLSchema | None = None,
    allow_huge_text: bool = False,
) -> Iterator[tuple[str, etree._Element]]:
    """Stream ``(event, element)`` pairs of a large untrusted file, optionally validating against ``schema``
    while parsing (libxml2 streaming validation: no full tree needed).

    The prolog is checked first (``XML_UNSAFE`` / ``XML_MALFORMED`` as :func:`check_prolog`). Later parse or
    validation failures propagate as :class:`lxml.etree.XMLSyntaxError` so that callers can tell them apart
    from their own errors; note that streaming validation errors carry no line number and surface only at the
    end of the document, after every event has been delivered. Call :func:`release` on each finished element to keep
    memory bounded. See :func:`parse_untrusted` for ``allow_huge_text``.
    """
    check_prolog(path)
    options = _parser_options(huge=allow_huge_text)
    if schema is not None:
        # lxml 6.1.3 / libxml2 2.14 bug: with a schema plugged into iterparse AND resolve_entities=False,
        # well-formedness errors are misreported ("no element found") or even lost (a file truncated before
        # its last end tags passes). "internal" keeps them. It changes nothing for safety: check_prolog has
        # refused any DOCTYPE, so no entity can be declared, and the DTD is checked again below.
        options["resolve_entities"] = "internal"
    # lxml opens (and closes) the file itself.
    context = etree.iterparse(str(path), events=tuple(events), schema=schema, remove_blank_text=False, **options)
    return _dtd_checked(context)


def _dtd_checked(context: Iterator[tuple[str, etree._Element]]) -> Iterator[tuple[str, etree._Element]]:
    """Refuse a DTD (the file changed since check_prolog) at the first event, then delegate at C speed."""
    for event, element in context:
        _refuse_dtd(element.getroottree())
        yield event, element
        break
    yield from context


def release(element: etree._Element) -> None:
    """Free a finished element and its earlier siblings (iterparse memory pattern); never call it on the root."""
    element.clear(keep_tail=False)
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]
