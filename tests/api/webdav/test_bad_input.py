"""Bad input on the WebDAV connector, against the real server (SQLite and PostgreSQL): path traversal, encoded
separators, a PUT to another subscriber's folder or an unknown circuit, a duplicate name, an empty file, an
oversized stream, a name that is not UTF-8, and the deposit errors of spec §4.4: each answers its catalogue
error (status, ``x-fast-error``, ``x-fast-error-msg``, JSON body) and stores nothing (no document, no blob, no
receipt, no spool file); content refusals queue the depositor's error mail."""

from __future__ import annotations

import http.client
import json
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from sqlalchemy import func, select

from parafe.db.models import OutboxItem, WebdavDeposit
from parafe.domain.errors import WEBDAV_CASE_OF, WEBDAV_CASES, E, ErrorDef
from tests.api.webdav.davutil import DAV, OTHER_SIREN, SIREN, Dav, assert_error, put, unique, url_path
from tests.conftest import TESTDATA
from tests.fixtures.files import encrypted_pdf, pdf_bytes, zip_bytes

MIB = 1024 * 1024
PES_SAMPLES = TESTDATA / "pes" / "samples"


class Snapshot:
    """What a refused request must not change."""

    def __init__(self, dav: Dav) -> None:
        self.dav = dav
        self.documents = dav.count_documents()
        self.blobs = dav.blob_count()
        self.receipts = self._receipts()
        self.mails = self._mails()

    def _receipts(self) -> int:
        with self.dav.ctx.db.read() as session:
            return int(session.scalar(select(func.count()).select_from(WebdavDeposit)) or 0)

    def _mails(self) -> list[dict[str, Any]]:
        with self.dav.ctx.db.read() as session:
            return [dict(p) for p in session.scalars(select(OutboxItem.payload)
                                                     .where(OutboxItem.kind == "mail.deposit_error")
                                                     .order_by(OutboxItem.id))]

    def assert_nothing_stored(self, *, mail: ErrorDef | None = None) -> None:
        assert self.dav.count_documents() == self.documents
        assert self.dav.blob_count() == self.blobs
        assert self._receipts() == self.receipts
        assert self.dav.spool_leftovers() == []
        new_mails = self._mails()[len(self.mails):]
        if mail is None:
            assert new_mails == []
        else:
            assert [m["code"] for m in new_mails] == [mail.code], new_mails


def raw_request(dav: Dav, method: str, raw_path: str, body: bytes = b"", email: str = "agent@demo.parafe.test",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A request whose path goes on the wire exactly as given (no client-side normalisation of ``..``)."""
    parts = urlsplit(dav.url)
    context = ssl.create_default_context(cafile=dav.home.ca)
    pem, key = dav.home.demo(email)
    context.load_cert_chain(pem, key)
    conn = http.client.HTTPSConnection(parts.hostname or "127.0.0.1", parts.port, context=context, timeout=60)
    try:
        conn.putrequest(method, raw_path, skip_accept_encoding=True)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _check_raw_error(status: int, headers: dict[str, str], body: bytes, expected: int, error: ErrorDef) -> None:
    assert status == expected, (status, headers, body)
    assert headers["x-fast-error"] == str(error.code)
    assert json.loads(body)["errorCode"] == error.code
    assert unquote(headers["x-fast-error-msg"]) == json.loads(body)["userFriendlyMessage"]


@pytest.mark.parametrize("raw", [
    "/123456789/in/bureautique/../../987654321/in/bureautique/{name}",
    "/123456789/in/bureautique/%2e%2e/%2E%2E/987654321/in/bureautique/{name}",
    "/123456789/in/bureautique/..%2F..%2F987654321%2Fin%2Fbureautique%2F{name}",
    "/123456789/in/bureautique/%2Fetc%2Fpasswd%2F{name}",
    "/123456789/in/bureautique/..\\..\\{name}",
    "/123456789/in/bureautique/%5C%5Cserveur%5C{name}",
    "/123456789/in/./bureautique/{name}",
])
def test_traversal_and_encoded_separators_are_refused(dav: Dav, raw: str) -> None:
    before = Snapshot(dav)
    path = DAV + raw.format(name=unique())
    for method, body in (("PUT", pdf_bytes()), ("PROPFIND", b""), ("GET", b""), ("DELETE", b"")):
        status, headers, content = raw_request(dav, method, path, body, headers={"Depth": "1"})
        _check_raw_error(status, headers, content, 400, E.BAD_REQUEST)
    before.assert_nothing_stored()


def test_put_to_another_subscriber_or_an_unknown_circuit(dav: Dav) -> None:
    before = Snapshot(dav)
    with dav.client() as c:
        assert_error(put(c, url_path(OTHER_SIREN, "in", "bureautique", unique()), pdf_bytes()), 403,
                     E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN)
        assert_error(put(c, url_path("111111111", "in", "bureautique", unique()), pdf_bytes()), 403,
                     E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN)
        assert_error(put(c, url_path(SIREN, "in", "inconnu", unique()), pdf_bytes()), 404, E.CIRCUIT_NOT_FOUND)
        assert_error(put(c, url_path(SIREN, "in", "inconnu", "libellé", unique()), pdf_bytes()), 404,
                     E.CIRCUIT_NOT_FOUND)
        # PUT outside in/<circuit>[/<label>]/<name>
        assert_error(put(c, url_path(SIREN, "in", "bureautique", "a", "b", unique()), pdf_bytes()), 404,
                     E.ROUTE_NOT_FOUND)
        assert_error(put(c, url_path(SIREN, "in", unique()), pdf_bytes()), 405, E.METHOD_NOT_ALLOWED)
        assert_error(put(c, url_path(SIREN, "out", "bureautique", unique()), pdf_bytes()), 403, E.NO_PERMISSION)
    before.assert_nothing_stored()


def test_duplicate_name_empty_file_and_non_utf8_name(dav: Dav) -> None:
    name = unique()
    with dav.client() as c:
        assert put(c, url_path(SIREN, "in", "bureautique", name), pdf_bytes()).status_code == 201
        before = Snapshot(dav)
        body = assert_error(put(c, url_path(SIREN, "in", "bureautique", name), pdf_bytes(text="autre")), 409,
                            E.DUPLICATE_FILE)
        assert body["userFriendlyMessage"] == "Fichier déjà déposé par un agent."
        before.assert_nothing_stored(mail=E.DUPLICATE_FILE)
        before = Snapshot(dav)
        assert_error(put(c, url_path(SIREN, "in", "bureautique", unique()), b""), 422, E.EMPTY_FILE)
        before.assert_nothing_stored(mail=E.EMPTY_FILE)
    before = Snapshot(dav)
    status, headers, content = raw_request(dav, "PUT", DAV + f"/{SIREN}/in/bureautique/caf%E9-{unique()}",
                                           pdf_bytes())
    _check_raw_error(status, headers, content, 400, E.BAD_CHARACTERS)
    before.assert_nothing_stored(mail=E.BAD_CHARACTERS)
    # a folder name that is not UTF-8 is refused too
    status, headers, content = raw_request(dav, "PROPFIND", DAV + f"/{SIREN}/in/caf%E9/", headers={"Depth": "1"})
    _check_raw_error(status, headers, content, 400, E.BAD_CHARACTERS)


def _pes_with_nomfic(sample: str, nom_fic: str) -> bytes:
    data = (PES_SAMPLES / sample).read_bytes()
    return re.sub(rb'(<NomFic V=")[^"]*(")', rb"\g<1>" + nom_fic.encode() + rb"\2", data, count=1)


def test_deposit_errors_of_spec_4_4(dav: Dav, tmp_path: Path) -> None:
    """The deposit cases of spec §4.4 the deposit service detects: same answer as the web services."""
    nom_fic = unique("", "NOMFIC")
    first = _pes_with_nomfic("valid_PES_PJ.xml", nom_fic)
    protected = encrypted_pdf(tmp_path, allow_modify=False).read_bytes()
    from parafe.signing.keys import load_signer
    from parafe.signing.pes import sign_pes

    key = load_signer(dav.home.path / "demo" / "signataire@demo.parafe.test.p12", "demo")
    signed = sign_pes(_pes_with_nomfic("valid_unsigned_PES_ex.xml", unique("", "SIGNE")), key, per_bordereau=True)
    broken = signed.replace(b'<MtBordHT V="55.22"/>', b'<MtBordHT V="99.99"/>', 1)
    assert broken != signed
    with dav.client() as c:
        assert put(c, url_path(SIREN, "in", "pes-pj", unique(".xml")), first).status_code == 201
        cases: list[tuple[str, str, bytes, int, ErrorDef]] = [
            ("pes-pj", unique(".xml"), first, 409, E.PES_DUPLICATE_NOMFIC),  # case 1
            ("pes", unique(".xml"), broken, 422, E.PES_SIGNATURE_INVALID),  # case 3
            ("pes", unique(".xml"), b"<PES_Aller><EnTetePES/></PES_Aller>", 422, E.PES_PROCESSING),  # case 4
            ("pes", unique(".pdf"), pdf_bytes(), 415, E.NOT_PES),  # case 4
            ("bureautique", unique(".docx"), b"PK\x03\x04 pas un pdf", 415, E.EXTENSION_NOT_ALLOWED),  # case 6
            ("bureautique", unique(".pdf"), protected, 422, E.PDF_PROTECTED),  # case 9
            ("bureautique", unique(".pdf.zip"), zip_bytes({"autre.pdf": pdf_bytes()}), 422,
             E.BUNDLE_MAIN_MISSING),
            ("bureautique", unique(".pdf"), b"%PDF-1.4 tronque", 415, E.PDF_INVALID),
        ]
        for circuit, name, data, status, error in cases:
            before = Snapshot(dav)
            assert_error(put(c, url_path(SIREN, "in", circuit, name), data), status, error)
            before.assert_nothing_stored(mail=error)
            if error.key in WEBDAV_CASE_OF:
                assert WEBDAV_CASES[WEBDAV_CASE_OF[error.key]].startswith("Tentative de dépôt")


def _stream(total: int) -> Iterator[bytes]:
    chunk = b"%PDF-1.4\n" + b"0" * (MIB - 9)
    sent = 0
    while sent < total:
        part = chunk[: min(MIB, total - sent)]
        sent += len(part)
        yield part


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("dav", ["sqlite"], indirect=True)
def test_oversized_stream_is_cut_at_the_limit(dav: Dav) -> None:
    """A 101 MiB PUT (streamed, with and without Content-Length) is cut at the 100 MiB limit while streaming:
    413 with the catalogue error, bounded server memory, nothing stored."""
    before = Snapshot(dav)
    hwm = _vm_hwm_kib(dav.server.process.pid)
    with dav.client() as c:
        chunked = c.put(url_path(SIREN, "in", "bureautique", unique()), content=_stream(101 * MIB))
        assert_error(chunked, 413, E.FILE_TOO_LARGE)
        sized = c.put(url_path(SIREN, "in", "bureautique", unique()), content=_stream(101 * MIB),
                      headers={"Content-Length": str(101 * MIB)})
        assert_error(sized, 413, E.FILE_TOO_LARGE)
    assert _vm_hwm_kib(dav.server.process.pid) - hwm < 40 * 1024
    before.assert_nothing_stored()
