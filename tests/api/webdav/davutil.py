"""Helpers of the WebDAV tests: a module-scoped real server per backend, requests, PROPFIND parsing, error checks
and the database set-up of the states the workflow would create (signed, refused, acknowledged).

The server runs without the in-process worker (``PARAFE_WORKER_IN_PROCESS=false``) unless a test asks for it,
so that documents stay in the states the tests put them in.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from lxml import etree
from sqlalchemy import func, select

from parafe.config import Settings
from parafe.context import AppContext
from parafe.db.models import Document, HistoryEntry, ReturnItem, WebdavDeposit, utcnow
from parafe.domain.errors import ErrorDef
from parafe.domain.states import State
from tests.conftest import (
    IN_CI,
    Home,
    ServedHome,
    create_postgres_database,
    drop_postgres_database,
    init_home,
    start_server,
    stop_server,
)

DAV = "/partage/webdav/clients"
SIREN = "123456789"
OTHER_SIREN = "987654321"
AGENT = "agent@demo.parafe.test"
VISA = "visa@demo.parafe.test"
SIGNER = "signataire@demo.parafe.test"
ADMIN = "admin@demo.parafe.test"
OTHER = "agent@autre.parafe.test"
NO_WORKER = {"PARAFE_WORKER_IN_PROCESS": "false"}


def unique(suffix: str = ".pdf", prefix: str = "doc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}{suffix}"


def url_path(*segments: str, collection: bool = False) -> str:
    """A DAV path with each segment percent-encoded as UTF-8."""
    path = DAV + "/" + "/".join(quote(s, safe="") for s in segments)
    return path + "/" if collection else path


class Dav(ServedHome):
    """The WebDAV suite's module-scoped server; clients default to the demo agent."""

    def client(self, email: str | None = AGENT, **kwargs: Any) -> httpx.Client:
        return self.server.client(email, **kwargs)

    # --- database views

    def count_documents(self) -> int:
        with self.ctx.db.read() as session:
            return int(session.scalar(select(func.count()).select_from(Document)) or 0)

    def document(self, doc_id: int) -> Document:
        with self.ctx.db.read() as session:
            doc = session.get(Document, doc_id)
            assert doc is not None
            session.expunge(doc)
            return doc

    def history_states(self, doc_id: int) -> list[str | None]:
        with self.ctx.db.read() as session:
            return list(session.scalars(select(HistoryEntry.state).where(HistoryEntry.document_id == doc_id)
                                        .order_by(HistoryEntry.id)))

    def documents_named(self, name: str) -> list[Document]:
        with self.ctx.db.read() as session:
            docs = list(session.scalars(select(Document).where(Document.name == name)))
            for doc in docs:
                session.expunge(doc)
            return docs

    def blob_count(self) -> int:
        root = self.home.path / "blobs"
        if not root.exists():
            return 0
        return sum(1 for p in root.rglob("*") if p.is_file() and "tmp" not in p.parts and "spool" not in p.name)

    def spool_leftovers(self) -> list[Path]:
        return [p for p in self.home.path.rglob("spool-*") if p.is_file()]

    # --- states the workflow would create

    def sign(self, doc_id: int, data: bytes, *, state: State = State.FILED, when: datetime | None = None) -> str:
        ref = self.ctx.store.put_bytes(data)
        with self.ctx.db.write() as session:
            doc = session.get(Document, doc_id)
            assert doc is not None
            doc.signed_blob_sha256 = ref.sha256
            doc.state = state.value
            doc.updated_at = when or utcnow()
            session.add(HistoryEntry(document_id=doc_id, state=state.value, user_fullname="parapheur parapheur",
                                     created_at=when or utcnow()))
        return ref.sha256

    def refuse(self, doc_id: int, message: str, *, state: State = State.REFUSED, actor: str = "Sophie Signataire",
               when: datetime | None = None) -> None:
        with self.ctx.db.write() as session:
            doc = session.get(Document, doc_id)
            assert doc is not None
            doc.state = state.value
            doc.refusal_message = message
            doc.updated_at = when or utcnow()
            session.add(HistoryEntry(document_id=doc_id, state=state.value, user_fullname=actor, comment=message,
                                     created_at=when or utcnow()))

    def age_returns(self, *, document_id: int | None = None, return_id: int | None = None,
                    when: datetime) -> None:
        with self.ctx.db.write() as session:
            if document_id is not None:
                doc = session.get(Document, document_id)
                assert doc is not None
                doc.updated_at = when
            if return_id is not None:
                item = session.get(ReturnItem, return_id)
                assert item is not None
                item.created_at = when

    def age_receipt(self, document_id: int, when: datetime) -> None:
        with self.ctx.db.write() as session:
            row = session.get(WebdavDeposit, document_id)
            assert row is not None
            row.created_at = when

    def return_row(self, public_id: int, kind: str) -> ReturnItem:
        with self.ctx.db.read() as session:
            item = session.scalar(select(ReturnItem).where(ReturnItem.public_id == public_id,
                                                           ReturnItem.kind == kind))
            assert item is not None
            session.expunge(item)
            return item


# --- requests ------------------------------------------------------------------------------------------------


def put(client: httpx.Client, path: str, data: bytes, **headers: str) -> httpx.Response:
    return client.put(path, content=data, headers=headers or None)


def propfind(client: httpx.Client, path: str, depth: str = "1", body: bytes | None = None) -> httpx.Response:
    return client.request("PROPFIND", path, headers={"Depth": depth}, content=body)


@dataclass
class Entry:
    href: str
    name: str
    collection: bool
    props: dict[str, str]

    @property
    def size(self) -> int:
        return int(self.props["getcontentlength"])


def listing(response: httpx.Response) -> dict[str, Entry]:
    """A multistatus as {decoded href: Entry} (properties of the 200 propstat, by DAV: local name)."""
    assert response.status_code == 207, (response.status_code, response.text)
    root = etree.fromstring(response.content)
    ns = {"D": "DAV:"}
    out: dict[str, Entry] = {}
    for resp in root.findall("D:response", ns):
        href = unquote(resp.findtext("D:href", namespaces=ns) or "")
        props: dict[str, str] = {}
        collection = False
        for propstat in resp.findall("D:propstat", ns):
            if "200" not in (propstat.findtext("D:status", namespaces=ns) or ""):
                continue
            found = propstat.find("D:prop", ns)
            for prop in found if found is not None else []:
                local = etree.QName(prop).localname
                props[local] = prop.text or ""
                if local == "resourcetype" and prop.find("D:collection", ns) is not None:
                    collection = True
        name = href.rstrip("/").rsplit("/", 1)[-1]
        out[href] = Entry(href=href, name=name, collection=collection, props=props)
    return out


def children(response: httpx.Response, path: str) -> dict[str, Entry]:
    """The members of a Depth 1 listing (without the folder itself), by name."""
    base = unquote(path).rstrip("/")
    return {e.name: e for href, e in listing(response).items() if href.rstrip("/") != base}


def assert_error(response: httpx.Response, status: int, error: ErrorDef) -> dict[str, Any]:
    """The WebDAV error shape of D6: status, x-fast-error, x-fast-error-msg (UTF-8 percent-encoded), JSON body."""
    assert response.status_code == status, (response.status_code, response.headers, response.text)
    assert response.headers["x-fast-error"] == str(error.code), response.headers
    message = unquote(response.headers["x-fast-error-msg"], encoding="utf-8")
    body = response.json()
    assert body["errorCode"] == error.code
    assert body["userFriendlyMessage"] == message
    if "{" not in error.message:
        assert message == error.message
    assert isinstance(body["generation"], int)
    return dict(body)


def require_tool(name: str) -> str:
    """The path of a Debian tool; in CI its absence fails the test, locally it skips with the reason."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package {name}; scripts/apt-test-packages.txt)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(cmd: list[str], *, input: bytes | None = None, timeout: float = 120, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, env=env, cwd=cwd, check=False)


# --- the server fixture ----------------------------------------------------------------------------------------


@contextmanager
def dav_server(tmp_path_factory: pytest.TempPathFactory, pki_template: Path, backend: str,
               extra_env: dict[str, str] | None = None) -> Iterator[Dav]:
    """A fresh home on ``backend`` and a real ``parafe serve`` over TLS on it (worker off by default)."""
    path = tmp_path_factory.mktemp(f"dav-{backend}") / "home"
    shutil.copytree(pki_template, path)
    dbname = None
    if backend == "sqlite":
        url = f"sqlite:///{path / 'parafe.db'}"
    else:
        url, dbname = create_postgres_database()
    try:
        init_home(path, url)
        home = Home(path=path, backend=backend, database_url=url)
        server = start_server(home, {**NO_WORKER, **(extra_env or {})})
        ctx = AppContext.from_settings(Settings(home=path, database_url=url))
        try:
            yield Dav(server=server, ctx=ctx)
        finally:
            ctx.close()
            stop_server(server)
    finally:
        if dbname:
            drop_postgres_database(dbname)
