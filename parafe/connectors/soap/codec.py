"""From request skeletons to Python values, and from Python values to response envelopes, per the WSDL.

Decoding walks the operation's complex type (:mod:`parafe.connectors.soap.contract`): every child becomes a
dict entry named as in the WSDL (lists for ``maxOccurs="unbounded"``, ``int`` for ``xs:long``/``xs:int``,
:class:`~parafe.connectors.soap.envelope.Binary` for base64 content, the lxml element for ``xs:anyType``).

Encoding writes the response wrapper qualified (``ns2:<op>Response``, as CXF does) and every child unqualified,
in the order of the schema; values are looked up by element name. Binary values are written as inline base64
(no MTOM in responses: Pastell and PHP's SoapClient cannot read it) and may be :class:`BinaryOut` streams, so
that a 100 MiB download is encoded chunk by chunk and never held in memory; the exact length of the envelope
is computed beforehand (``Content-Length``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

from lxml import etree

from parafe.connectors.soap.contract import CONTRACT, NS, SOAP_ENV, XSI, ComplexType, Operation
from parafe.connectors.soap.envelope import Binary

ENVELOPE_HEAD = (
    f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
).encode()
ENVELOPE_TAIL = b"</soap:Body></soap:Envelope>"
_B64_READ = 3 * 64 * 1024  # multiple of 3: every chunk but the last encodes without padding
_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# ---- decoding ------------------------------------------------------------------------------------------------

def _is_nil(element: etree._Element) -> bool:
    return element.get(f"{{{XSI}}}nil") in ("true", "1")


def _simple(element: etree._Element, type_name: str) -> Any:
    if _is_nil(element):
        return None
    text = element.text or ""
    if type_name in ("xs:long", "xs:int"):
        return int(text.strip())
    if type_name == "xs:double":
        return float(text.strip())
    return text


def decode(element: etree._Element, ctype: ComplexType, binaries: Mapping[Any, Binary]) -> dict[str, Any]:
    """The values of a (schema-valid) element of complex type ``ctype``."""
    values: dict[str, Any] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        qname = etree.QName(child)
        particle = ctype.child(qname.localname, qname.namespace)
        if particle is None:
            continue
        value: Any
        if particle.is_binary:
            value = binaries.get(child)
        elif particle.type == "xs:anyType":
            value = None if _is_nil(child) else child
        elif particle.type.startswith("xs:"):
            value = _simple(child, particle.type)
        else:
            sub = CONTRACT.type_of(particle.type)
            value = None if (_is_nil(child) or sub is None) else decode(child, sub, binaries)
        if particle.repeated:
            values.setdefault(particle.name, []).append(value)
        else:
            values[particle.name] = value
    return values


def decode_request(operation: Operation, element: etree._Element, binaries: Mapping[Any, Binary]) -> dict[str, Any]:
    return decode(element, CONTRACT.element_type(operation.input_element), binaries)


# ---- encoding ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BinaryOut:
    """Binary content to send as base64, read from a stream opened on demand (a blob, a built ZIP…)."""

    size: int
    opener: Callable[[], BinaryIO]

    @property
    def encoded_size(self) -> int:
        return 4 * ((self.size + 2) // 3)

    def base64_chunks(self) -> Iterator[bytes]:
        remaining = self.size
        with self.opener() as stream:
            while remaining > 0:
                want = min(_B64_READ, remaining)
                buf = bytearray()
                while len(buf) < want:
                    piece = stream.read(want - len(buf))
                    if not piece:
                        raise OSError("binary content shorter than announced")
                    buf += piece
                remaining -= len(buf)
                yield base64.b64encode(bytes(buf))


Part = bytes | BinaryOut


def xml_text(value: str) -> str:
    """Escaped character data; characters XML 1.0 cannot carry are dropped."""
    return escape(_INVALID_XML_CHARS.sub("", value))


def _scalar(value: Any, type_name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if type_name == "xs:dateTime" and isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return str(value)


class _Writer:
    def __init__(self) -> None:
        self.parts: list[Part] = []
        self._buf: list[str] = []

    def text(self, value: str) -> None:
        self._buf.append(value)

    def binary(self, value: BinaryOut) -> None:
        self.flush()
        self.parts.append(value)

    def flush(self) -> None:
        if self._buf:
            self.parts.append("".join(self._buf).encode("utf-8"))
            self._buf = []

    def element(self, name: str, value: Any, type_name: str) -> None:
        if value is None:
            return
        if type_name == "xs:base64Binary":
            self.text(f"<{name}>")
            if isinstance(value, BinaryOut):
                self.binary(value)
            else:
                self.text(base64.b64encode(bytes(value)).decode("ascii"))
            self.text(f"</{name}>")
            return
        ctype = CONTRACT.type_of(type_name)
        if ctype is not None:
            self.text(f"<{name}>")
            self.content(ctype, value)
            self.text(f"</{name}>")
            return
        self.text(f"<{name}>{xml_text(_scalar(value, type_name))}</{name}>")

    def content(self, ctype: ComplexType, values: Mapping[str, Any]) -> None:
        for particle in ctype.children:
            value = values.get(particle.name)
            if value is None:
                continue
            items = value if particle.repeated and isinstance(value, (list, tuple)) else [value]
            for item in items:
                self.element(particle.name, item, particle.type)


def response_parts(operation: Operation, values: Mapping[str, Any]) -> list[Part]:
    """The whole response envelope of ``operation`` carrying ``values`` (keys = WSDL child names)."""
    name = operation.output_element
    writer = _Writer()
    writer.parts.append(ENVELOPE_HEAD)
    writer.text(f'<ns2:{name} xmlns:ns2="{NS}">')
    writer.content(CONTRACT.element_type(name), values)
    writer.text(f"</ns2:{name}>")
    writer.flush()
    writer.parts.append(ENVELOPE_TAIL)
    return writer.parts


def parts_length(parts: list[Part]) -> int:
    return sum(p.encoded_size if isinstance(p, BinaryOut) else len(p) for p in parts)


def iter_parts(parts: list[Part]) -> Iterator[bytes]:
    for part in parts:
        if isinstance(part, BinaryOut):
            yield from part.base64_chunks()
        else:
            yield part
