"""The pure pieces of the WebDAV connector, without a server: raw path checks, return naming, the refusal
envelope, PROPFIND rendering and content negotiation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from parafe.connectors.webdav import propfind
from parafe.connectors.webdav.handlers import accepts_gzip
from parafe.connectors.webdav.paths import check_raw_path
from parafe.domain.errors import E, ParafeError
from parafe.services.webdav import folders as svc
from parafe.services.webdav import out_folders


@pytest.mark.parametrize(("raw", "error"), [
    (b"/partage/webdav/clients/1/in/c/../x.pdf", E.BAD_REQUEST),
    (b"/partage/webdav/clients/1/in/c/%2E%2e/x.pdf", E.BAD_REQUEST),
    (b"/partage/webdav/clients/1/in/./x.pdf", E.BAD_REQUEST),
    (b"/partage/webdav/clients/1/in/c/a%2Fb.pdf", E.BAD_REQUEST),
    (b"/partage/webdav/clients/1/in/c/a%5cb.pdf", E.BAD_REQUEST),
    (b"/partage/webdav/clients/1/in/c/a\\b.pdf", E.BAD_REQUEST),
    (b"partage/webdav/clients/1/in/c/x.pdf", E.BAD_REQUEST),
    (b"/partage/webdav/clients/1/in/c/a%00b.pdf", E.BAD_CHARACTERS),
    (b"/partage/webdav/clients/1/in/c/a%0Ab.pdf", E.BAD_CHARACTERS),
    (b"/partage/webdav/clients/1/in/caf%E9/x.pdf", E.BAD_CHARACTERS),
])
def test_raw_paths_refused(raw: bytes, error: object) -> None:
    with pytest.raises(ParafeError) as info:
        check_raw_path(raw, "PUT")
    assert info.value.error is error


def test_raw_paths_accepted() -> None:
    assert check_raw_path(b"/partage/webdav/clients/1/in/c/D%C3%A9lib%C3%A9ration.pdf", "PUT").raw_last_segment is None
    assert check_raw_path(b"/partage/webdav/clients/1/in/c/a..b.pdf", "GET").raw_last_segment is None
    # the last segment of a PUT that is not UTF-8 goes to the deposit service as bytes (its error, its mail)
    assert check_raw_path(b"/partage/webdav/clients/1/in/c/caf%E9.pdf", "PUT").raw_last_segment == b"caf\xe9.pdf"
    with pytest.raises(ParafeError):
        check_raw_path(b"/partage/webdav/clients/1/in/c/caf%E9.pdf", "GET")


def test_names_in_out() -> None:
    when = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    entries = [svc.FileEntry("a.pdf", svc.SIGNED, 7, 1, "e", when, "b"),
               svc.FileEntry("a.pdf", svc.SIGNED, 3, 1, "e", when, "b"),
               svc.FileEntry("ACQUIT_a.pdf", svc.ACK, 9, 1, "e", when, "b"),
               svc.FileEntry("notes", svc.SIGNED, 4, 1, "e", when, "b"),
               svc.FileEntry("notes", svc.SIGNED, 5, 1, "e", when, "b")]
    names = sorted(e.name for e in out_folders._named(entries))
    assert names == ["ACQUIT_a.pdf", "a.pdf", "a_7.pdf", "notes", "notes_5"]
    assert svc.flow_folder("Chorus-Pivot") == svc.CHORUS_PIVOT
    assert svc.flow_folder("pes-retour") == svc.PES_RETOUR
    assert svc.flow_folder("bureautique") is None


def test_refusal_envelope() -> None:
    data = out_folders.refusal_envelope(100000042, "a&b.pdf", "disapproved", datetime(2026, 11, 28, 9, 5, 1, 250000),
                                        "Victor Valideur", "Motif <important>", "clients")
    root = etree.fromstring(data)
    assert [(c.tag, c.text) for c in root] == [
        ("docId", "100000042"), ("nomFichier", "a&b.pdf"), ("etat", "Visa désapprouvé"),
        ("date", "2026-11-28T09:05:01.250Z"), ("acteur", "Victor Valideur"), ("message", "Motif <important>")]
    envelope = out_folders.refusal_envelope(1, "x", "disapproved", datetime.now(UTC), None, None, "v3.4")
    assert b"Rejet\xc3\xa9" in envelope


def test_propfind_rendering() -> None:
    when = datetime(2026, 11, 28, 10, 0, 5, tzinfo=UTC)
    entry = svc.FileEntry("Délibération & co.pdf", svc.SIGNED, 1, 1234, "abc", when, "b")
    request = propfind.PropfindRequest("prop", [("DAV:", "getcontentlength"), ("DAV:", "getetag"),
                                                ("urn:x", "absent")])
    href = "/d/" + propfind.href_of(entry.name)
    body = propfind.multistatus(request, [("/d/", "d", None)], [(href, entry)])
    root = etree.fromstring(body)
    responses = root.findall("{DAV:}response")
    assert [r.findtext("{DAV:}href") for r in responses] == ["/d/", "/d/D%C3%A9lib%C3%A9ration%20%26%20co.pdf"]
    file_props = {etree.QName(p).localname: p.text for p in responses[1].iter() if etree.QName(p).namespace in (
        "DAV:", "urn:x") and etree.QName(p).localname in ("getcontentlength", "getetag", "absent")}
    assert file_props == {"getcontentlength": "1234", "getetag": '"abc"', "absent": None}
    statuses = [s.text for s in responses[1].iter("{DAV:}status")]
    assert statuses == ["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found"]
    allprop = etree.fromstring(propfind.multistatus(propfind.PropfindRequest("allprop", []), [], [(href, entry)]))
    assert allprop.findtext(".//{DAV:}getlastmodified") == "Sat, 28 Nov 2026 10:00:05 GMT"
    assert allprop.findtext(".//{DAV:}displayname") == "Délibération & co.pdf"
    assert allprop.findtext(".//{DAV:}getcontenttype") == "application/pdf"


def test_accept_encoding() -> None:
    assert accepts_gzip("gzip, deflate")
    assert accepts_gzip("br;q=1.0, gzip;q=0.8")
    assert accepts_gzip("*")
    assert not accepts_gzip("")
    assert not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=0")
