"""Streaming parse of a SOAP 1.1 request envelope, with base64 content decoded straight to disk.

The body (already spooled to a file by the dispatcher) is fed to lxml in 64 KiB chunks through a parser
*target*: no DTD (refused), no entity, no network, default libxml2 limits. Only the operation element (the
first child of ``Body``) is kept, as a small "skeleton" tree; the text of every ``xs:base64Binary`` element of
the contract (``dataHandler``, ``arg1``, ``pictogrammes`` …) never enters it: it is decoded chunk by chunk
into a :class:`~parafe.storage.spool.HashingSpool` with the deposit size limit, so a 100 MiB document is never
held in memory. MTOM/XOP requests (``xop:Include`` in a base64 element) point at an attachment already spooled
by :mod:`parafe.connectors.soap.mtom`. The skeleton is then validated against the WSDL's schema.
"""

from __future__ import annotations

import binascii
import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from lxml import etree

from parafe.connectors.soap.contract import CONTRACT, NS, SOAP12_ENV, SOAP_ENV, XOP, ComplexType, Operation
from parafe.domain.errors import E, ParafeError
from parafe.storage.spool import HashingSpool, SizeLimitExceeded

FEED_CHUNK = 64 * 1024
MAX_ELEMENTS = 50_000  # elements of one envelope (getMultiIdsSmsUrl ids, search meta entries…)
MAX_TEXT = 8 * 1024 * 1024  # characters of non-binary text in one envelope (synchronizeUsers JSON…)
_WS = b" \t\r\n"


class SoapVersionMismatch(Exception):
    """The envelope is a SOAP 1.2 (or unknown) envelope: answered with a ``VersionMismatch`` fault."""


@dataclass(frozen=True)
class Binary:
    """Decoded binary content of one base64 element (or one MTOM attachment), spooled to disk."""

    path: Path
    sha256: str
    size: int

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def bad_request(reason: str, detail: str | None = None) -> ParafeError:
    return ParafeError(E.BAD_REQUEST, reason=reason, detail=detail)


class Base64Sink:
    """Decodes base64 text fed in arbitrary pieces (whitespace and line breaks ignored) into a spool."""

    def __init__(self, directory: Path, limit: int) -> None:
        self.spool = HashingSpool(directory, limit=limit, prefix="soap-b64-")
        self._pending = b""
        self._ended = False

    def feed(self, text: str) -> None:
        try:
            data = text.encode("ascii")
        except UnicodeEncodeError:
            raise bad_request("contenu base64 invalide") from None
        data = data.translate(None, _WS)
        if not data:
            return
        if self._ended:
            raise bad_request("contenu base64 invalide", "data after padding")
        buf = self._pending + data
        cut = len(buf) - len(buf) % 4
        self._pending = buf[cut:]
        if cut:
            self._decode(buf[:cut])

    def _decode(self, chunk: bytes) -> None:
        try:
            decoded = binascii.a2b_base64(chunk, strict_mode=True)
        except binascii.Error as exc:
            raise bad_request("contenu base64 invalide", str(exc)) from None
        if chunk.endswith(b"="):
            self._ended = True
        try:
            self.spool.write(decoded)
        except SizeLimitExceeded:
            raise ParafeError(E.FILE_TOO_LARGE) from None

    def finish(self) -> Binary:
        if self._pending:  # tolerate missing padding
            if len(self._pending) == 1:
                raise bad_request("contenu base64 invalide", "truncated")
            self._decode(self._pending + b"=" * (4 - len(self._pending)))
            self._pending = b""
        path, sha256, size = self.spool.finish(fsync=False)
        return Binary(path, sha256, size)

    def discard(self) -> None:
        self.spool.discard()


@dataclass
class ParsedRequest:
    """The operation, its skeleton element and the binaries decoded from it (to delete when done)."""

    operation: Operation
    element: etree._Element
    binaries: dict[Any, Binary] = field(default_factory=dict)  # skeleton element -> content
    extras: dict[str, str] = field(default_factory=dict)  # tolerated parameters the WSDL does not declare

    def discard(self) -> None:
        for binary in self.binaries.values():
            binary.discard()


@dataclass
class _Frame:
    ctype: ComplexType | None  # complex type of this element's content (None: simple or unknown)
    binary: Base64Sink | None = None
    xop_href: str | None = None


class _EnvelopeTarget:
    """lxml parser target: checks the envelope, builds the operation skeleton, decodes binaries."""

    def __init__(self, tmp_dir: Path, limit: int, attachments: Mapping[str, Binary]) -> None:
        self.tmp_dir = tmp_dir
        self.limit = limit
        self.attachments = attachments
        self.depth = 0
        self.in_body = False
        self.body_children = 0
        self.inherited_ns: dict[str | None, str] = {}
        self.builder: etree.TreeBuilder | None = None
        self.frames: list[_Frame] = []
        self.skip_depth = 0  # > 0 while inside an xop:Include
        self.operation: Operation | None = None
        self.binaries: dict[Any, Binary] = {}
        self.open_sinks: list[Base64Sink] = []
        self.elements = 0
        self.text = 0
        self.root: etree._Element | None = None
        self.saw_envelope = False

    # lxml target interface

    def doctype(self, name: str | None, pubid: str | None, system: str | None) -> None:
        raise ParafeError(E.XML_UNSAFE, detail="DOCTYPE in a SOAP envelope")

    def start(self, tag: str, attrib: Mapping[str, str], nsmap: Mapping[str | None, str] | None = None) -> None:
        self.depth += 1
        self.elements += 1
        if self.elements > MAX_ELEMENTS:
            raise bad_request("enveloppe SOAP trop complexe", f"more than {MAX_ELEMENTS} elements")
        qname = etree.QName(tag)
        if self.builder is not None:
            self._start_in_operation(qname, tag, attrib, nsmap)
            return
        if nsmap:
            self.inherited_ns.update(nsmap)
        if self.depth == 1:
            if qname.localname == "Envelope" and qname.namespace == SOAP12_ENV:
                raise SoapVersionMismatch(qname.namespace)
            if qname.localname != "Envelope" or qname.namespace != SOAP_ENV:
                if qname.localname == "Envelope":
                    raise SoapVersionMismatch(qname.namespace or "")
                raise bad_request("enveloppe SOAP 1.1 attendue", f"root element {tag}")
            self.saw_envelope = True
        elif self.depth == 2:
            self.in_body = qname.localname == "Body" and qname.namespace == SOAP_ENV
        elif self.depth == 3 and self.in_body:
            self.body_children += 1
            if self.body_children > 1:
                raise bad_request("un seul élément est attendu dans le corps SOAP")
            operation = CONTRACT.by_input_element.get(qname.localname) if qname.namespace == NS else None
            if operation is None:
                raise bad_request(f"opération SOAP inconnue « {qname.localname} »",
                                  f"no operation for {{{qname.namespace or ''}}}{qname.localname}")
            self.operation = operation
            self.builder = etree.TreeBuilder()
            self.builder.start(tag, dict(attrib), dict(self.inherited_ns))
            self.frames.append(_Frame(CONTRACT.element_type(operation.input_element)))

    def _start_in_operation(self, qname: etree.QName, tag: str, attrib: Mapping[str, str],
                            nsmap: Mapping[str | None, str] | None) -> None:
        assert self.builder is not None
        parent = self.frames[-1]
        if self.skip_depth:
            self.skip_depth += 1
            return
        if parent.binary is not None:
            if qname.localname == "Include" and qname.namespace == XOP and parent.xop_href is None:
                parent.xop_href = attrib.get("href", "")
                self.skip_depth = 1
                return
            raise bad_request("élément inattendu dans un contenu base64", tag)
        particle = parent.ctype.child(qname.localname, qname.namespace) if parent.ctype is not None else None
        frame = _Frame(CONTRACT.type_of(particle.type) if particle is not None else None)
        if particle is not None and particle.is_binary:
            frame.binary = Base64Sink(self.tmp_dir, self.limit)
            self.open_sinks.append(frame.binary)
        self.frames.append(frame)
        self.builder.start(tag, dict(attrib), dict(nsmap) if nsmap else None)

    def end(self, tag: str) -> None:
        self.depth -= 1
        if self.builder is None:
            if self.depth == 1:
                self.in_body = False
            return
        if self.skip_depth:
            self.skip_depth -= 1
            return
        frame = self.frames.pop()
        element = self.builder.end(tag)
        if frame.binary is not None:
            if frame.xop_href is not None:
                frame.binary.discard()
                self.binaries[element] = self._attachment(frame.xop_href)
            else:
                self.binaries[element] = frame.binary.finish()
            self.open_sinks.remove(frame.binary)
        if not self.frames:
            self.root = self.builder.close()
            self.builder = None

    def data(self, data: str) -> None:
        if self.builder is None or self.skip_depth:
            return
        frame = self.frames[-1]
        if frame.binary is not None:
            if frame.xop_href is not None and data.strip():
                raise bad_request("contenu base64 et xop:Include mélangés")
            frame.binary.feed(data)
            return
        self.text += len(data)
        if self.text > MAX_TEXT:
            raise bad_request("texte trop long dans l'enveloppe SOAP", f"more than {MAX_TEXT} characters")
        self.builder.data(data)

    def comment(self, text: str) -> None:
        pass

    def pi(self, target: str, data: str | None = None) -> None:
        pass

    def close(self) -> etree._Element | None:
        return self.root

    # helpers

    def _attachment(self, href: str) -> Binary:
        from urllib.parse import unquote

        cid = unquote(href[4:] if href.lower().startswith("cid:") else href).strip("<>")
        binary = self.attachments.get(cid)
        if binary is None:
            raise bad_request("pièce jointe MTOM introuvable", f"no MIME part with Content-ID {cid!r}")
        if binary.size > self.limit:
            raise ParafeError(E.FILE_TOO_LARGE)
        return binary

    def abort(self) -> None:
        for sink in self.open_sinks:
            sink.discard()
        for binary in self.binaries.values():
            if binary not in self.attachments.values():
                binary.discard()


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    while True:
        chunk = source.read(FEED_CHUNK)
        if not chunk:
            return
        yield chunk


# Tolerated deviations from the schema (DECISIONS D0: liberal in what we accept), applied before validation.
def _tolerate(operation: Operation, element: etree._Element, extras: dict[str, str]) -> None:
    if operation.name == "getSMSHistory":
        # v3.4 §2.5.20 also documents `status` and `limit` (and names the circuit `circuitId`); the live WSDL
        # has only siren, cinematiqueId and date. Accept both: the extras are taken out before validation.
        for child in list(element):
            if child.tag in ("status", "limit"):
                extras[child.tag] = (child.text or "").strip()
                element.remove(child)
            elif child.tag == "circuitId":
                child.tag = "cinematiqueId"
    elif operation.name == "getRefusalMessage":
        # Pastell and v3.4 §2.5.15 name the parameter documentId; the WSDL says nodeRefId.
        for child in element:
            if child.tag == "documentId":
                child.tag = "nodeRefId"
    elif operation.name == "uploadOnDemand":
        # The WSDL references the global element tns:circuit (hence qualified); the v3.4 example (§2.5.23)
        # writes an unqualified <circuit>.
        for child in element:
            if child.tag == "circuit":
                child.tag = f"{{{NS}}}circuit"


def parse_envelope(
    source: BinaryIO, *, tmp_dir: Path, limit: int, attachments: Mapping[str, Binary] | None = None,
) -> ParsedRequest:
    """Parse and validate one request envelope; raises :class:`ParafeError` (a client fault) when refused."""
    target = _EnvelopeTarget(tmp_dir, limit, attachments or {})
    parser = etree.XMLParser(target=target, resolve_entities=False, no_network=True, load_dtd=False,
                             dtd_validation=False, huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        for chunk in _chunks(source):
            parser.feed(chunk)
        parser.close()
    except etree.XMLSyntaxError as exc:
        target.abort()
        if isinstance(exc.__context__, (ParafeError, SoapVersionMismatch)):
            raise exc.__context__ from None
        raise bad_request("enveloppe SOAP mal formée", str(exc)) from None
    except BaseException:
        target.abort()
        raise
    if target.root is None or target.operation is None:
        target.abort()
        if not target.saw_envelope:
            raise bad_request("enveloppe SOAP 1.1 attendue")
        raise bad_request("aucune opération dans le corps SOAP")
    request = ParsedRequest(target.operation, target.root, target.binaries)
    _tolerate(request.operation, request.element, request.extras)
    schema = CONTRACT.schema
    if not schema.validate(request.element):
        request.discard()
        error = schema.error_log.last_error
        message = error.message if error is not None else "invalid"
        raise bad_request(f"message non conforme au WSDL pour l'opération « {request.operation.name} »", message)
    return request
