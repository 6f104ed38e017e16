"""Untrusted XML: DTDs and entities refused before parsing, malformed input reported, streaming helpers."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from parafe.domain.errors import E, ParafeError
from parafe.formats.pes import pes_aller_schema
from parafe.formats.safexml import check_prolog, iterparse_untrusted, parse_untrusted, release
from tests.conftest import TESTDATA

SAMPLES = TESTDATA / "pes" / "samples"

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<r>&xxe;</r>"""
XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<r/>"""
XXE_NETWORK = b"""<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r/>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz a="&lol9;">&lol9;</lolz>"""
QUADRATIC = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "' + b"x" * 50_000 + b'">]><r>' + b"&a;" * 50_000 + b"</r>"
UTF16_DOCTYPE = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>'.encode("utf-16")
BARE_DOCTYPE = b"<!DOCTYPE r><r/>"

UNSAFE = {"xxe-file": XXE_FILE, "xxe-parameter": XXE_PARAMETER, "xxe-network": XXE_NETWORK,
          "billion-laughs": LAUGHS, "quadratic-blowup": QUADRATIC, "utf16": UTF16_DOCTYPE, "bare": BARE_DOCTYPE}


@pytest.mark.parametrize("data", UNSAFE.values(), ids=UNSAFE.keys())
@pytest.mark.parametrize("as_", ["bytes", "path", "file"])
def test_doctype_and_entities_are_refused(tmp_path: Path, data: bytes, as_: str) -> None:
    path = tmp_path / "x.xml"
    path.write_bytes(data)
    sources: dict[str, bytes | Path | io.BytesIO] = {"bytes": data, "path": path, "file": io.BytesIO(data)}
    source = sources[as_]
    with pytest.raises(ParafeError) as err:
        parse_untrusted(source)
    assert err.value.error is E.XML_UNSAFE
    assert err.value.message == "Fichier XML refusé : entités ou DTD interdites."


@pytest.mark.parametrize("data", UNSAFE.values(), ids=UNSAFE.keys())
def test_doctype_refused_before_streaming(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.xml"
    path.write_bytes(data)
    with pytest.raises(ParafeError) as err:
        list(iterparse_untrusted(path, schema=pes_aller_schema(), allow_huge_text=True))
    assert err.value.error is E.XML_UNSAFE


def test_check_prolog_stops_at_the_root(tmp_path: Path) -> None:
    # everything after the root start tag is garbage: the prolog scan must not read it
    data = b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<!-- hello --><?pi x?><n:r xmlns:n="urn:x" Id="a1">\x00\x01'
    prolog = check_prolog(data)
    assert prolog.root_tag == "{urn:x}r"
    assert prolog.root_local_name == "r"
    assert prolog.root_namespace == "urn:x"
    assert prolog.root_attrib == {"Id": "a1"}
    assert prolog.encoding == "ISO-8859-1"
    stream = io.BytesIO(b"junk" + data)
    stream.seek(4)
    assert check_prolog(stream).root_tag == "{urn:x}r"
    assert stream.tell() == 4  # rewound


@pytest.mark.parametrize(("data", "encoding"), [
    (b"<r/>", "UTF-8"),
    (b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8'?><r/>", "utf-8"),
    ("<?xml version='1.0' encoding='UTF-16'?><r/>".encode("utf-16"), "UTF-16"),
    (b'<?xml version="1.0" standalone="yes" ?><r/>', "UTF-8"),
])
def test_declared_encoding(data: bytes, encoding: str) -> None:
    assert check_prolog(data).encoding == encoding


def test_prolog_without_root_in_the_first_mebibyte() -> None:
    data = b"<!--" + b"x" * (1024 * 1024 + 10) + b"--><r/>"
    with pytest.raises(ParafeError) as err:
        check_prolog(data)
    assert err.value.error is E.XML_MALFORMED
    assert "first" in (err.value.detail or "")


@pytest.mark.parametrize("data", [b"", b"not xml", b"<r><a></r>", b"<r>", b"<r/><r/>", b"<r>&undefined;</r>",
                                  b'<r a="1" a="2"/>', b"<r>\x01</r>"])
def test_malformed(data: bytes) -> None:
    with pytest.raises(ParafeError) as err:
        parse_untrusted(data)
    assert err.value.error is E.XML_MALFORMED
    assert err.value.message == "Fichier XML mal formé."


def test_parse_keeps_encoding_and_accents() -> None:
    tree = parse_untrusted(SAMPLES / "valid_unsigned_iso8859_accents.xml")
    assert tree.docinfo.encoding == "ISO-8859-1"
    values = [e.get("V") for e in tree.iter("LibelleColBud")]
    assert values
    assert any(ch in values[0] for ch in "éèàêôç")


def test_non_seekable_stream_is_read_once() -> None:
    class OneWay(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, b: Any) -> int:  # a writable buffer
            chunk = self._inner.read(len(b))
            b[:len(chunk)] = chunk
            return len(chunk)

    tree = parse_untrusted(io.BufferedReader(OneWay(b"<r><a/></r>")))
    assert tree.getroot().tag == "r"


def test_text_node_limit_only_lifted_on_request() -> None:
    data = b"<r>" + b"A" * 10_500_000 + b"</r>"
    with pytest.raises(ParafeError) as err:
        parse_untrusted(data)
    assert err.value.error is E.XML_MALFORMED
    assert len(parse_untrusted(data, allow_huge_text=True).getroot().text or "") == 10_500_000


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_streaming_validation_still_reports_truncation(tmp_path: Path, cut: float) -> None:
    """Regression: lxml loses well-formedness errors when a schema is plugged into iterparse with
    resolve_entities=False (a file cut before its last end tags passed)."""
    data = (SAMPLES / "valid_unsigned_PES_ex.xml").read_bytes()
    path = tmp_path / "cut.xml"
    path.write_bytes(data[: int(len(data) * cut)])

    def read_all() -> None:
        for _event, element in iterparse_untrusted(path, schema=pes_aller_schema()):
            if element.getparent() is not None:
                release(element)

    with pytest.raises(etree.XMLSyntaxError):
        read_all()


def test_release_bounds_the_tree_whatever_the_document_size(tmp_path: Path) -> None:
    """iterparse reads ahead (events come in batches), so the live tree holds one batch of siblings at most,
    not the whole document."""
    items = 100_000
    path = tmp_path / "many.xml"
    path.write_bytes(b"<r>" + b"<item><a/><b>t</b></item>" * items + b"</r>")
    widest = 0
    seen = 0
    for _event, element in iterparse_untrusted(path):
        parent = element.getparent()
        if parent is None:
            assert len(element) <= 1
            continue
        seen += element.tag == "item"
        release(element)
        widest = max(widest, len(parent))
    assert seen == items
    assert widest < items / 20
