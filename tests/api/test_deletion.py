"""Delete and purge are definitive (issue 15): the bytes leave the blob store itself (files under
``$PARAFE_HOME/blobs``, objects of a moto S3 bucket), a blob another live document shares stays, a tombstone
stays in the database with the NomFic reservation, and REST, SOAP and WebDAV answer as for an id that never
existed. Each test runs on SQLite and PostgreSQL, on the filesystem store and on S3 (moto server)."""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from sqlalchemy import select, update

from parafe.config import get_settings, reset_settings
from parafe.context import AppContext
from parafe.db.models import Annex, Document, HistoryEntry, MetadataValue, PesNomFic, ReturnItem, utcnow
from parafe.domain.errors import E
from parafe.domain.states import State
from parafe.services import steps as wf
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import ADMIN, AGENT, SIGNER, VISA
from parafe.services.documents.deposit import DepositRequest, deposit
from parafe.services.helios import returns
from parafe.services.ondemand import OnDemandRequest, deposit_on_demand
from parafe.services.retention import purge
from parafe.signing.keys import load_signer
from tests.conftest import TESTDATA, Home, LiveServer, start_server, stop_server
from tests.fixtures.files import pdf_bytes
from tests.workflow.conftest import make_upload, run_jobs

REST = "/parapheur-ws/rest/v1"
SOAP = "/parapheur-soap/soap/v1/Documents"
DAV = "/partage/webdav/clients/123456789"
NS = "http://sei.ws.fast.cdc.com/"
NEVER = "199999999"  # an id no document ever had
S3_KEYS = {"PARAFE_S3_ACCESS_KEY": "testing", "PARAFE_S3_SECRET_KEY": "testing", "PARAFE_S3_REGION": "us-east-1"}
_HEX = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class Stack:
    home: Home
    ctx: AppContext
    env: dict[str, str]  # the storage settings, for the server process
    stored: Callable[[], set[str]]  # the sha256 names present in the store, read from the store itself


@pytest.fixture(params=["fs", "s3"])
def stack(request: pytest.FixtureRequest, home: Home, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    env = {"PARAFE_STORAGE": request.param}
    if request.param == "s3":
        env.update(S3_KEYS, PARAFE_S3_ENDPOINT_URL=request.getfixturevalue("moto_endpoint"),
                   PARAFE_S3_BUCKET=f"parafe-del-{uuid.uuid4().hex[:10]}")
    for key, value in {**env, "PARAFE_QUEUE": "memory", "PARAFE_JOB_BACKOFF_SECONDS": "0.2"}.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    ctx = AppContext.from_settings(get_settings())

    if request.param == "fs":
        def stored() -> set[str]:
            root = home.path / "blobs"
            return {name for _, _, files in os.walk(root) for name in files if _HEX.match(name)}
    else:
        import boto3

        ctx.store.ensure_bucket()  # type: ignore[attr-defined]
        client = boto3.client("s3", endpoint_url=env["PARAFE_S3_ENDPOINT_URL"], region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")

        def stored() -> set[str]:
            names: set[str] = set()
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=env["PARAFE_S3_BUCKET"]):
                names.update(obj["Key"].rsplit("/", 1)[-1] for obj in page.get("Contents", []))
            return {name for name in names if _HEX.match(name)}
    try:
        yield Stack(home=home, ctx=ctx, env=env, stored=stored)
    finally:
        ctx.close()


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _soap(client: httpx.Client, operation: str, inner: str) -> httpx.Response:
    body = (f'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sei="{NS}">'
            f"<soapenv:Body><sei:{operation}>{inner}</sei:{operation}></soapenv:Body></soapenv:Envelope>")
    return client.post(SOAP, content=body.encode(), headers={"Content-Type": "text/xml; charset=utf-8"})


def _soap_fault(response: httpx.Response) -> tuple[int, str]:
    root = etree.fromstring(response.content)
    text = root.findtext(".//faultstring")
    assert text is not None, response.text[:1000]
    return response.status_code, text


def _rest_error(response: httpx.Response) -> tuple[int, Any, Any]:
    body = response.json()
    return response.status_code, body.get("errorCode"), body.get("userFriendlyMessage")


def _answers_as_unknown(server: LiveServer, doc_id: int) -> None:
    """REST and SOAP answer for ``doc_id`` exactly as for an id that never existed."""
    with server.client(AGENT) as client:
        for method, path in (("GET", "/documents/v2/{id}/download"), ("GET", "/documents/v2/{id}/history"),
                             ("GET", "/documents/v2/{id}/getFdc"), ("GET", "/documents/v2/{id}/metas"),
                             ("DELETE", "/documents/v2/{id}")):
            gone = client.request(method, REST + path.format(id=doc_id))
            never = client.request(method, REST + path.format(id=NEVER))
            assert gone.status_code == never.status_code, (path, gone.text)
            assert gone.status_code in (404, 410), (path, gone.text)
            assert _rest_error(gone) == _rest_error(never), path
        for operation in ("download", "history", "delete", "getFdc"):
            gone = _soap(client, operation, f"<documentId>{doc_id}</documentId>")
            never = _soap(client, operation, f"<documentId>{NEVER}</documentId>")
            assert _soap_fault(gone) == _soap_fault(never), operation
        for path in ("/documents/{id}", "/documents/{id}/telecharger"):  # the portal
            gone, never = client.get(path.format(id=doc_id)), client.get(path.format(id=NEVER))
            assert gone.status_code == never.status_code == 404, path


def _state(ctx: AppContext, doc_id: int) -> str | None:
    with ctx.db.read() as s:
        return s.scalar(select(Document.state).where(Document.id == doc_id))


def _signer(ctx: AppContext, email: str) -> Any:
    return load_signer(ctx.settings.resolved_home / "demo" / f"{email}.p12", "demo")


def test_delete_erases_the_bytes_and_leaves_a_tombstone(stack: Stack, tmp_path: Path) -> None:
    ctx = stack.ctx
    shared = pdf_bytes(text="annexe commune")
    agent = principal_for_email(ctx, AGENT)
    # B: a live document sharing an annex with A
    keep = deposit(ctx, agent, DepositRequest(
        siren="123456789", circuit="bureautique", upload=make_upload(tmp_path, "garde.pdf", pdf_bytes(text="B")),
        annexes=[make_upload(tmp_path, "commune.pdf", shared)])).document_id
    # A: signed twice (two signed versions), then rejected at its visa, then deleted
    circuit = json.dumps({"type": "BUREAUTIQUE_PDF", "steps": [
        {"step": "signature", "members": [SIGNER]}, {"step": "signature", "members": [ADMIN]},
        {"step": "visa", "members": [VISA]}]})
    gone = deposit_on_demand(ctx, agent, OnDemandRequest(
        siren="123456789", circuit=circuit, upload=make_upload(tmp_path, "supprimé.pdf", pdf_bytes(text="A")),
        annexes=[make_upload(tmp_path, "commune.pdf", shared),
                 make_upload(tmp_path, "propre.pdf", pdf_bytes(text="annexe de A"))])).document_id
    run_jobs(ctx)
    wf.sign_with_signer(ctx, principal_for_email(ctx, SIGNER), gone, _signer(ctx, SIGNER))
    run_jobs(ctx)
    with ctx.db.read() as s:
        first_signed = s.scalar(select(Document.signed_blob_sha256).where(Document.id == gone))
    wf.sign_with_signer(ctx, principal_for_email(ctx, ADMIN), gone, _signer(ctx, ADMIN))
    run_jobs(ctx)
    wf.reject_visa(ctx, principal_for_email(ctx, VISA), gone, "Pièce manquante")
    run_jobs(ctx)
    # C: a PES refused by its signer, deleted over SOAP; its NomFic stays reserved
    pes = re.sub(rb'<NomFic V="[^"]*"/>', f'<NomFic V="DEL_{uuid.uuid4().hex[:8]}"/>'.encode(),
                 (TESTDATA / "pes" / "samples" / "valid_unsigned_PES_ex.xml").read_bytes(), count=1)
    pes_doc = deposit(ctx, agent, DepositRequest(
        siren="123456789", circuit="pes", upload=make_upload(tmp_path, "flux.xml", pes))).document_id
    run_jobs(ctx)
    wf.refuse(ctx, principal_for_email(ctx, SIGNER), pes_doc, "Bordereau faux")
    run_jobs(ctx)

    with ctx.db.read() as s:
        a = s.get(Document, gone)
        assert a is not None
        assert a.state == State.DISAPPROVED.value
        assert a.signed_blob_sha256
        annexes = {n: sha for n, sha in s.execute(select(Annex.name, Annex.blob_sha256)
                                                  .where(Annex.document_id == gone))}
        own = {a.blob_sha256, first_signed, a.signed_blob_sha256, annexes["propre.pdf"]}
        assert len(own) == 4  # original, first signed version, second, own annex
        assert None not in own
        b = s.get(Document, keep)
        c = s.get(Document, pes_doc)
        assert b is not None
        assert c is not None
        assert c.state == State.REFUSED.value
        kept = {b.blob_sha256, annexes["commune.pdf"]}
        pes_blob, nom_fic = c.blob_sha256, c.nom_fic
    assert own | kept | {pes_blob} <= stack.stored()

    server = start_server(stack.home, stack.env)  # with its in-process worker: it erases
    try:
        with server.client(AGENT) as client:
            response = client.delete(f"{REST}/documents/v2/{gone}")
            assert response.status_code == 200, response.text
            response = _soap(client, "delete", f"<documentId>{pes_doc}</documentId>")
            assert response.status_code == 200, response.text
        _wait(lambda: not (own | {pes_blob}) & stack.stored(), "the deleted documents' bytes are still stored")
        assert kept <= stack.stored()  # shared with a live document, or its own: kept
        from parafe.db.models import DocumentBlobVersion, DocumentTombstone  # (issue 15's tables)

        def erasure_recorded() -> bool:  # the eraser removes the bytes, then records it (its own commit)
            with ctx.db.read() as s:
                return all((t := s.get(DocumentTombstone, i)) is not None and t.erased_at is not None
                           for i in (gone, pes_doc))

        _wait(erasure_recorded, "the erasure of the deleted documents is not recorded")
        with ctx.db.read() as s:
            for doc_id, name in ((gone, "supprimé.pdf"), (pes_doc, "flux.xml")):
                assert s.get(Document, doc_id) is None
                tombstone = s.get(DocumentTombstone, doc_id)
                assert tombstone is not None
                assert tombstone.name == name
                assert tombstone.reason == "delete"
                assert tombstone.deleted_by_name == "Alice Agent"
                assert tombstone.subscriber_id is not None
                assert tombstone.erased_at is not None
                assert tombstone.blobs == []
                for model in (Annex, MetadataValue, HistoryEntry, DocumentBlobVersion):
                    assert s.scalar(select(model.id).where(model.document_id == doc_id)) is None, model
            tomb_c = s.get(DocumentTombstone, pes_doc)
            assert tomb_c is not None
            assert tomb_c.nom_fic == nom_fic
            assert tomb_c.circuit_key == "pes"
            assert s.get(PesNomFic, nom_fic) is not None
        with server.client(AGENT) as client:  # the NomFic stays taken
            again = client.post(f"{REST}/documents/v2/123456789/pes/upload",
                                files={"content": ("flux.xml", pes, "text/xml")})
            assert again.status_code >= 400
            assert again.json()["errorCode"] == E.PES_DUPLICATE_NOMFIC.code
        _answers_as_unknown(server, gone)
        _answers_as_unknown(server, pes_doc)
    finally:
        stop_server(server)


def test_purge_erases_what_leaves_webdav(stack: Stack, tmp_path: Path) -> None:
    ctx = stack.ctx
    data = pdf_bytes(text="déposé par WebDAV")
    name = f"purge-{uuid.uuid4().hex[:8]}.pdf"
    server = start_server(stack.home, stack.env)
    try:
        with server.client(AGENT) as client:
            assert client.put(f"{DAV}/in/serveur/{name}", content=data).status_code in (201, 204)
            with ctx.db.read() as s:
                webdav_doc = s.scalar(select(Document.id).where(Document.name == name))
            assert webdav_doc is not None
            # the same bytes deposited over REST in another circuit: a live document sharing the original
            live = client.post(f"{REST}/documents/v2/123456789/bureautique/upload",
                               files={"content": (name, data, "application/pdf")})
            assert live.status_code == 200, live.text
            _wait(lambda: _state(ctx, webdav_doc) == State.FILED.value, "the WebDAV document was not filed")
            assert client.get(f"{DAV}/out/serveur/{name}").status_code == 200
        flow = returns.add_return(ctx, kind="pes_retour", data=b"<PES_Retour>ancien</PES_Retour>",
                                  name="PES_Retour_ancien.xml", siren="123456789")
        waiting = returns.add_return(ctx, kind="pes_retour", data=b"<PES_Retour>jamais lu</PES_Retour>",
                                     name="PES_Retour_en_attente.xml", siren="123456789")
        with server.client(AGENT) as client:  # fetched: it may go once out of out/; the other one waits (D11)
            assert client.get(f"{REST}/documents/v2/{flow}/pes-retour/download").status_code == 200
        with ctx.db.read() as s:
            doc = s.get(Document, webdav_doc)
            assert doc is not None
            assert doc.signed_blob_sha256
            original, signed = doc.blob_sha256, doc.signed_blob_sha256
            flow_blob = s.scalar(select(ReturnItem.blob_sha256).where(ReturnItem.public_id == flow))
            waiting_blob = s.scalar(select(ReturnItem.blob_sha256).where(ReturnItem.public_id == waiting))
        assert {original, signed, flow_blob, waiting_blob} <= stack.stored()
        old = utcnow() - timedelta(days=16)
        with ctx.db.write() as s:  # 16 days pass
            s.execute(update(Document).where(Document.id == webdav_doc).values(updated_at=old))
            s.execute(update(ReturnItem).where(ReturnItem.public_id.in_([flow, waiting])).values(created_at=old))

        report = purge(ctx)  # the daily job's function
        left = stack.stored()
        assert signed not in left
        assert flow_blob not in left
        assert original in left  # the live REST deposit holds the same bytes
        assert waiting_blob in left  # not fetched yet: still in listRemainingPesRetour (D11)
        assert report["webdav_documents"] == 1
        assert report["returns"] == 1
        from parafe.db.models import DocumentTombstone

        with ctx.db.read() as s:
            assert s.get(Document, webdav_doc) is None
            tombstone = s.get(DocumentTombstone, webdav_doc)
            assert tombstone is not None
            assert tombstone.reason == "purge"
            assert tombstone.name == name
            assert s.scalar(select(ReturnItem.id).where(ReturnItem.public_id == flow)) is None
        with server.client(AGENT) as client:
            out = client.get(f"{DAV}/out/serveur/{name}")
            never = client.get(f"{DAV}/out/serveur/jamais-{name}")
            assert out.status_code == never.status_code == 404
            listing = client.request("PROPFIND", f"{DAV}/out/serveur/", headers={"Depth": "1"})
            assert listing.status_code == 207
            assert name not in listing.text
            remaining = client.get(f"{REST}/documents/v2/123456789/pes-retour/remaining").json()
            assert flow not in remaining
            assert waiting in remaining
            pes_retour = client.get(f"{REST}/documents/v2/{flow}/pes-retour/download")
            assert pes_retour.status_code == 404
        _answers_as_unknown(server, webdav_doc)
    finally:
        stop_server(server)
