"""Documents that cannot be opened as what they claim, or that pass the PDF limits, are refused at deposit on
every connector, in the connector's own error format, with nothing stored (issue 18 points 1 and 2).

The truncated PDF is a real PDF cut before its cross-reference table (``xref``, trailer, ``startxref`` gone):
qpdf reconstructs it and used to let it through, the server signature then failed 8 times and the document stayed
« Envoyé pour signature » forever. The server runs with ``PARAFE_PDF_MAX_PAGES=2`` so that a 3-page PDF shows the
``PDF_TOO_COMPLEX`` refusal (257) on each connector.
"""

from __future__ import annotations

import base64
import io
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pikepdf
import pytest

from parafe.domain.errors import E, ErrorDef
from tests.api.soap.soaputil import envelope, fault, post
from tests.api.webdav.davutil import assert_error, put, url_path
from tests.conftest import Home, LiveServer, start_server, stop_server
from tests.fixtures.files import pdf_bytes

AGENT = "agent@demo.parafe.test"
SIREN = "123456789"


def truncated_pdf() -> bytes:
    """A 2-page PDF cut right before its cross-reference table: every object is there, nothing after them."""
    with pikepdf.open(io.BytesIO(pdf_bytes(2, "tronqué"))) as pdf:
        buf = io.BytesIO()
        pdf.save(buf, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    data = buf.getvalue()
    return data[: data.rindex(b"\nxref\n")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki_template: Path) -> Iterator[LiveServer]:
    import shutil

    path = tmp_path_factory.mktemp("broken-home") / "home"
    shutil.copytree(pki_template, path)
    home = Home(path=path, backend="sqlite", database_url=f"sqlite:///{path / 'parafe.db'}")
    live = start_server(home, {"PARAFE_WORKER_IN_PROCESS": "false", "PARAFE_PDF_MAX_PAGES": "2"})
    try:
        yield live
    finally:
        stop_server(live)


def _stored(server: LiveServer) -> tuple[int, int]:
    """(documents, blob files) of the server's home."""
    with sqlite3.connect(server.home.path / "parafe.db") as db:
        documents = db.execute("SELECT count(*) FROM documents").fetchone()[0]
    blobs = server.home.path / "blobs"
    files = [p for p in blobs.rglob("*") if p.is_file() and "tmp" not in p.parts] if blobs.exists() else []
    return int(documents), len(files)


def _rest(c: httpx.Client, name: str, data: bytes, error: ErrorDef) -> None:
    r = c.post(f"/parapheur-ws/rest/v1/documents/v2/{SIREN}/bureautique/upload",
               files={"content": (name, data, "application/pdf")})
    assert r.status_code == error.http_status, r.text
    body = r.json()
    assert body["errorCode"] == error.code
    assert body["userFriendlyMessage"].startswith(error.message.split("{")[0])


def _soap(c: httpx.Client, name: str, data: bytes, error: ErrorDef) -> None:
    r = post(c, envelope("upload", f"<subscriberId>{SIREN}</subscriberId><circuitId>bureautique</circuitId>"
                                   f"<dataFileVO><dataHandler>{base64.b64encode(data).decode()}</dataHandler>"
                                   f"<filename>{name}</filename></dataFileVO>"))
    assert r.status_code == 500, r.text[:500]
    message = fault(r)[1]
    assert message.startswith(error.message.split("{")[0]), message


def _webdav(c: httpx.Client, name: str, data: bytes, error: ErrorDef) -> None:
    assert_error(put(c, url_path(SIREN, "in", "bureautique", name), data), error.http_status, error)


CONNECTORS = {"rest": _rest, "soap": _soap, "webdav": _webdav}


@pytest.mark.parametrize("connector", sorted(CONNECTORS))
@pytest.mark.parametrize("case", ["truncated", "too_many_pages"])
def test_refused_at_deposit_with_nothing_stored(server: LiveServer, connector: str, case: str) -> None:
    data, error = (truncated_pdf(), E.PDF_INVALID) if case == "truncated" else (pdf_bytes(3), E.PDF_TOO_COMPLEX)
    before = _stored(server)
    with server.client(AGENT) as c:
        CONNECTORS[connector](c, f"{case}-{uuid.uuid4().hex[:8]}.pdf", data, error)
    assert _stored(server) == before


def test_a_sound_pdf_still_goes_through(server: LiveServer) -> None:
    with server.client(AGENT) as c:
        r = c.post(f"/parapheur-ws/rest/v1/documents/v2/{SIREN}/bureautique/upload",
                   files={"content": ("sain.pdf", pdf_bytes(2), "application/pdf")})
    assert r.status_code == 200, r.text
