"""``listRemainingSignedDocs`` lists what a client still has to fetch (issue 15): with the ``serveur`` demo circuit
run by the real workflow (no state forced), a signed document is listed over SOAP and REST although it is now
« Classé », until a client of its subscriber downloads it (SOAP ``download``, REST download, WebDAV ``out/``
GET); another subscriber never sees it."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import httpx
from lxml import etree
from sqlalchemy import select

from parafe.db.models import Document
from parafe.domain.errors import E
from parafe.domain.states import State
from parafe.services.demo import AGENT, OTHER_AGENT
from tests.conftest import Home, start_server, stop_server
from tests.fixtures.files import pdf_bytes

REST = "/parapheur-ws/rest/v1"
SOAP = "/parapheur-soap/soap/v1/Documents"
DAV = "/partage/webdav/clients/123456789"
NS = "http://sei.ws.fast.cdc.com/"
SIREN, OTHER_SIREN = "123456789", "987654321"


def _soap(client: httpx.Client, operation: str, **params: str) -> etree._Element:
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in params.items())
    body = (f'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sei="{NS}">'
            f"<soapenv:Body><sei:{operation}>{inner}</sei:{operation}></soapenv:Body></soapenv:Envelope>")
    response = client.post(SOAP, content=body.encode(), headers={"Content-Type": "text/xml; charset=utf-8"})
    return etree.fromstring(response.content)


def soap_remaining(client: httpx.Client, siren: str = SIREN, circuit: str = "") -> list[str]:
    root = _soap(client, "listRemainingSignedDocs", siren=siren, circuitId=circuit)
    assert root.find(".//faultstring") is None, etree.tostring(root)
    return [node.text or "" for node in root.iter("return")]


def rest_remaining(client: httpx.Client, siren: str = SIREN, circuit: str | None = None) -> list[str]:
    response = client.get(f"{REST}/documents/v2/{siren}/signed/remaining",
                          params={"circuitId": circuit} if circuit else None)
    assert response.status_code == 200, response.text
    return [str(i) for i in response.json()]


def _column(ctx: Any, column: Any, where: Any) -> Any:
    with ctx.db.read() as session:
        return session.scalar(select(column).where(where))


def _wait_filed(ctx: Any, doc_id: str) -> None:
    deadline = time.monotonic() + 60
    while _column(ctx, Document.state, Document.id == int(doc_id)) != State.FILED.value:
        assert time.monotonic() < deadline, f"document {doc_id} was not signed and filed"
        time.sleep(0.3)


def _listed(client: httpx.Client, doc_id: str) -> bool:
    """Listed in every view of the caller's subscriber (SOAP and REST, with and without the circuit); asserts
    the views agree."""
    views = [doc_id in soap_remaining(client), doc_id in soap_remaining(client, circuit="serveur"),
             doc_id in rest_remaining(client), doc_id in rest_remaining(client, circuit="serveur")]
    assert len(set(views)) == 1, views
    return views[0]


def test_signed_documents_stay_listed_until_a_client_downloads_them(home: Home, ctx: Any) -> None:
    server = start_server(home)  # with its in-process worker: the serveur circuit signs, then files
    try:
        with server.client(AGENT) as agent, server.client(OTHER_AGENT) as other:
            ids: list[str] = []
            for channel in ("soap", "rest", "webdav"):
                name = f"{channel}-{uuid.uuid4().hex[:8]}.pdf"
                if channel == "webdav":
                    assert agent.put(f"{DAV}/in/serveur/{name}", content=pdf_bytes(text=name)).status_code in (201, 204)
                    doc_id = str(_column(ctx, Document.id, Document.name == name))  # PUT is consumed synchronously
                else:
                    response = agent.post(f"{REST}/documents/v2/{SIREN}/serveur/upload",
                                          files={"content": (name, pdf_bytes(text=name), "application/pdf")})
                    assert response.status_code == 200, response.text
                    doc_id = response.text.strip()
                ids.append(doc_id)
            unsigned = agent.post(f"{REST}/documents/v2/{SIREN}/bureautique/upload",
                                  files={"content": ("à viser.pdf", pdf_bytes(text="visa"), "application/pdf")})
            assert unsigned.status_code == 200
            for doc_id in ids:
                _wait_filed(ctx, doc_id)  # signed, then « Classé »: the current state is no longer « Signé »
            assert set(ids) <= set(soap_remaining(agent, circuit="serveur"))  # SOAP, as clients call it
            for doc_id in ids:
                assert _listed(agent, doc_id)
            assert unsigned.text.strip() not in rest_remaining(agent)  # waiting for its visa: not signed
            assert set(ids).isdisjoint(rest_remaining(agent, circuit="bureautique"))
            # another subscriber never sees them, and cannot ask for this subscriber's list
            assert set(ids).isdisjoint(soap_remaining(other, siren=OTHER_SIREN))
            assert set(ids).isdisjoint(rest_remaining(other, siren=OTHER_SIREN))
            fault = _soap(other, "listRemainingSignedDocs", siren=SIREN, circuitId="")
            assert fault.findtext(".//faultstring") == E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN.message
            assert other.get(f"{REST}/documents/v2/{SIREN}/signed/remaining").status_code == 403
            assert other.get(f"{REST}/documents/v2/{ids[0]}/download").status_code == 404  # not his to fetch

            soap_doc, rest_doc, dav_doc = ids
            content = _soap(agent, "download", documentId=soap_doc).findtext(".//content")
            assert content
            assert base64.b64decode(content).startswith(b"%PDF")
            assert not _listed(agent, soap_doc)
            assert _listed(agent, rest_doc)
            assert _listed(agent, dav_doc)
            assert agent.get(f"{REST}/documents/v2/{rest_doc}/download").status_code == 200
            assert not _listed(agent, rest_doc)
            assert _listed(agent, dav_doc)
            fetched = agent.get(f"{DAV}/out/serveur/{_column(ctx, Document.name, Document.id == int(dav_doc))}")
            assert fetched.status_code == 200
            assert fetched.content.startswith(b"%PDF")
            assert not _listed(agent, dav_doc)
            # a second download changes nothing; the documents are still there
            assert agent.get(f"{REST}/documents/v2/{soap_doc}/download").status_code == 200
            assert set(ids).isdisjoint(rest_remaining(agent))
            assert set(ids).isdisjoint(soap_remaining(agent))
    finally:
        stop_server(server)
