"""The contract model and the streaming envelope parser, without a server: every WSDL operation has a handler,
base64 content is decoded in pieces (line breaks, chunk boundaries, missing padding) within the size limit."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest

from parafe.connectors.soap import codec
from parafe.connectors.soap.contract import CONTRACT, NS
from parafe.connectors.soap.envelope import FEED_CHUNK, parse_envelope
from parafe.connectors.soap.ops import load_all
from parafe.domain.errors import E, ParafeError
from tests.api.soap.soaputil import envelope
from tests.conftest import SPEC


def test_every_operation_of_the_wsdl_has_a_handler() -> None:
    wsdl = (SPEC / "wsdl" / "Documents.wsdl").read_text()
    assert len(CONTRACT.operations) == 31 == wsdl.count("<soap:operation ")
    assert set(load_all()) == set(CONTRACT.operations)
    for op in CONTRACT.operations.values():
        assert op.input_element == op.name
        assert op.output_element == f"{op.name}Response"
        assert op.input_element in CONTRACT.elements
        assert op.output_element in CONTRACT.elements
    assert CONTRACT.operations["uploadPJ"].fault == "IOException"
    assert CONTRACT.operations["getProperties"].fault is None
    assert [p.name for p in CONTRACT.types["dataFileVO"].children] == ["dataHandler", "filename"]


def _upload(data_handler: str, name: str = "a.pdf") -> bytes:
    return envelope("upload", f"<subscriberId>1</subscriberId><dataFileVO><dataHandler>{data_handler}"
                              f"</dataHandler><filename>{name}</filename></dataFileVO>")


def _decoded(body: bytes, tmp_path: Path, limit: int = 10 * 1024 * 1024) -> bytes:
    request = parse_envelope(io.BytesIO(body), tmp_dir=tmp_path, limit=limit)
    values = codec.decode_request(request.operation, request.element, request.binaries)
    binary = values["dataFileVO"]["dataHandler"]
    data = binary.path.read_bytes()
    assert binary.size == len(data)
    request.discard()
    assert not binary.path.exists()
    return data


def test_base64_pieces(tmp_path: Path) -> None:
    data = os.urandom(3 * FEED_CHUNK + 7)
    encoded = base64.b64encode(data).decode()
    assert _decoded(_upload(encoded), tmp_path) == data
    mime = "\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))  # Java MIME-style lines
    assert _decoded(_upload(mime), tmp_path) == data
    assert _decoded(_upload(encoded.rstrip("=")), tmp_path) == data  # padding left out
    assert _decoded(_upload(""), tmp_path) == b""


def test_base64_errors_and_limit(tmp_path: Path) -> None:
    for bad in ("QUJD=QUJD", "Q", "QUJ*", "é"):
        with pytest.raises(ParafeError) as info:
            _decoded(_upload(bad), tmp_path)
        assert info.value.error is E.BAD_REQUEST, bad
    with pytest.raises(ParafeError) as info:
        _decoded(_upload(base64.b64encode(b"x" * 1001).decode()), tmp_path, limit=1000)
    assert info.value.error is E.FILE_TOO_LARGE
    assert not [p for p in tmp_path.iterdir()]  # nothing left behind


def test_decode_types(tmp_path: Path) -> None:
    body = envelope("searchDetails", "<siren>123</siren><meta><parameters><entry><key>K</key><value>V</value>"
                                     "</entry><entry><key>L</key></entry></parameters></meta>")
    request = parse_envelope(io.BytesIO(body), tmp_dir=tmp_path, limit=10)
    values = codec.decode_request(request.operation, request.element, request.binaries)
    assert values == {"siren": "123", "meta": {"parameters": {"entry": [{"key": "K", "value": "V"}, {"key": "L"}]}}}
    props = parse_envelope(io.BytesIO(envelope("getPropertiesByName", "<documentId> 42 </documentId><name>x</name>")),
                           tmp_dir=tmp_path, limit=10)
    assert codec.decode_request(props.operation, props.element, props.binaries) == {"documentId": 42, "name": "x"}


def test_response_is_schema_valid_and_streams(tmp_path: Path) -> None:
    from lxml import etree

    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(1_000_001))
    parts = codec.response_parts(CONTRACT.operations["download"], {"return": {
        "documentId": "100000000", "content": codec.BinaryOut(1_000_001, lambda: blob.open("rb"))}})
    data = b"".join(codec.iter_parts(parts))
    assert len(data) == codec.parts_length(parts)
    wrapper = etree.fromstring(data)[0][0]
    assert wrapper.tag == f"{{{NS}}}downloadResponse"
    CONTRACT.schema.assertValid(wrapper)
    assert base64.b64decode(wrapper.findtext("return/content") or "") == blob.read_bytes()
