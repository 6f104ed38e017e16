"""The authorization matrix of every OSS route, against the real server over TLS, as in
``tests/api/rest/test_authorization_matrix.py``. The routes are enumerated from the application
(``create_oss_app``): a route without its line here fails :func:`test_every_route_has_an_entry`.

Web services (client certificate):
- no certificate → 401, code 161 (JSON D2 shape);
- a user of another subscriber (``agent@autre``, agent of ``oss-autre``) → exactly the answer of an unknown
  workflow or document id;
- a user of the subscriber without the role (``visa@``: agent of ``oss-demo-2`` only, not of ``oss-demo``) → the
  same « unknown » answers for the documents of ``oss-demo``, « no permission » where it names the workflow (as
  REST's R2 answers a circuit of one's subscriber without the agent role);
- the workflow's agent → success, and the subscriber admin (OSS admin profile: supervision) → success for the
  documents and statistics, « no permission » for deposits (the admin profile does not deposit, spec §3.2).

Signing pages (public: the link's token is the authorization, whoever calls): an unknown token answers the
« invalid link » page for everyone; a document of another link answers exactly like an unknown document.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from parafe.connectors.oss import create_oss_app
from parafe.domain.errors import E, ErrorDef
from tests.api.oss.helpers import ADMIN, AGENT, OTHER, VISA, Oss, error, meta_xml, post_doc, token_of
from tests.api.routes import routes_of
from tests.fixtures.files import pdf_bytes

NONE = "none"
IDENTITIES = (NONE, OTHER, VISA, ADMIN, AGENT)
UNKNOWN_DOC = "599999999"
SIGNER_META = meta_xml(OTP_firstname_0="Jean", OTP_lastname_0="Dupont", OTP_email_0="jean.dupont@exemple.fr",
                       OTP_phonenumber_0="06 12 34 56 78")
Expected = tuple[int, ErrorDef] | None  # None: success (2xx)


@dataclass
class Route:
    call: Callable[[httpx.Client, dict[str, Any]], httpx.Response]
    other: Expected
    norole: Expected
    prepare: Callable[[Oss], dict[str, Any]] | None = None
    unknown: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # the same call on an unknown id
    admin: Expected = None  # the subscriber's admin (OSS admin profile: supervision, no deposit)
    agent: Expected = None  # the workflow's agent


def _signed(oss: Oss) -> dict[str, Any]:
    with oss.client(AGENT) as agent:
        r = post_doc(agent, "signServerDoc")
        assert r.status_code == 200, r.text
    return {"doc": r.headers["X-FAST-document-id"]}


def _waiting(oss: Oss, method: str = "uploadSMS") -> dict[str, Any]:
    with oss.client(AGENT) as agent:
        r = post_doc(agent, method, meta=SIGNER_META)
        assert r.status_code == 200, r.text
    return {"doc": str(r.json()["docId"]), "token": token_of(r.json()["url"])}


def _sa_waiting(oss: Oss) -> dict[str, Any]:
    return _waiting(oss, "uploadSA")


def _unknown_doc(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "doc": UNKNOWN_DOC}


def _unknown_workflow(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "workflow": "inconnu"}


def _sgc(c: httpx.Client, d: dict[str, Any]) -> httpx.Response:
    return c.post("/oss/uploadSGC", files=[("dataFile", ("sgc.pdf", pdf_bytes(text="sgc"), "application/pdf"))],
                  data={"workflowId": d.get("workflow", "oss-demo"), "firstname": "Jeanne", "lastname": "Martin",
                        "email": "jeanne.martin@exemple.fr", "phoneNumber": "06 44 44 44 44"})


NOT_FOUND = (404, E.DOCUMENT_NOT_FOUND)
NO_WORKFLOW = (404, E.OSS_WORKFLOW_NOT_FOUND)
NOT_AGENT = (403, E.NO_PERMISSION)  # a workflow of one's own subscriber one is not an agent of (as REST's R2)

API: dict[tuple[str, str], Route] = {
    ("POST", "/signServerDoc"): Route(
        lambda c, d: post_doc(c, "signServerDoc", workflow=d.get("workflow", "oss-demo")), NO_WORKFLOW,
        NOT_AGENT, unknown=_unknown_workflow, admin=NOT_AGENT),
    ("POST", "/uploadSA"): Route(
        lambda c, d: post_doc(c, "uploadSA", workflow=d.get("workflow", "oss-demo")), NO_WORKFLOW, NOT_AGENT,
        unknown=_unknown_workflow, admin=NOT_AGENT),
    ("POST", "/uploadSMS"): Route(
        lambda c, d: post_doc(c, "uploadSMS", workflow=d.get("workflow", "oss-demo"), meta=SIGNER_META),
        NO_WORKFLOW, NOT_AGENT, unknown=_unknown_workflow, admin=NOT_AGENT),
    ("POST", "/uploadSGC"): Route(_sgc, NO_WORKFLOW, NOT_AGENT, unknown=_unknown_workflow, admin=NOT_AGENT),
    ("GET", "/downloadDoc/{document_id}"): Route(
        lambda c, d: c.get(f"/oss/downloadDoc/{d['doc']}"), NOT_FOUND, NOT_FOUND, _signed, _unknown_doc),
    ("GET", "/docInformation/{document_id}"): Route(
        lambda c, d: c.get(f"/oss/docInformation/{d['doc']}"), NOT_FOUND, NOT_FOUND, _signed, _unknown_doc),
    ("POST", "/generateSAUrl"): Route(
        lambda c, d: c.post("/oss/generateSAUrl", data={"ids": d["doc"]}), NOT_FOUND, NOT_FOUND, _sa_waiting,
        _unknown_doc),
    ("POST", "/generateSMSUrl"): Route(
        lambda c, d: c.post("/oss/generateSMSUrl", data={"ids": d["doc"]}), NOT_FOUND, NOT_FOUND, _waiting,
        _unknown_doc),
    ("GET", "/admin/workflows/{workflow_id}"): Route(
        lambda c, d: c.get(f"/oss/admin/workflows/{d.get('workflow', 'oss-demo')}"), NO_WORKFLOW,
        NOT_AGENT, unknown=_unknown_workflow, agent=NOT_AGENT),
}

# Public routes: the signing pages (the token is the authorization), the stylesheet and the API documentation.
PAGES = {("GET", "/signature/{token}"), ("POST", "/signature/{token}/code"), ("POST", "/signature/{token}/signer"),
         ("POST", "/signature/{token}/refuser"), ("GET", "/signature/{token}/documents/{document_id}")}
PUBLIC = {("GET", "/static/oss.css"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect")}


def _app_routes(oss: Oss) -> set[tuple[str, str]]:
    return set(routes_of(create_oss_app(oss.ctx).routes))


def test_every_route_has_an_entry(oss: Oss) -> None:
    routes = _app_routes(oss)
    listed = set(API) | PAGES | PUBLIC
    assert routes == listed, (routes ^ listed, "a route without its line in the authorization matrix")


def _client(oss: Oss, identity: str) -> httpx.Client:
    return oss.client(None if identity == NONE else identity)


def _shape(response: httpx.Response, asked: str) -> tuple[int, Any]:
    """Status and body, without the time and with the caller's own id or name (echoed) made neutral."""
    body = response.json()
    body.pop("generation", None)
    body["developerMessage"] = body["developerMessage"].replace(asked, "<demandé>")
    return response.status_code, body


@pytest.mark.parametrize("key", list(API), ids=[f"{m} {p}" for m, p in API])
def test_web_services(oss: Oss, key: tuple[str, str]) -> None:
    route = API[key]
    data = route.prepare(oss) if route.prepare else {}
    for identity in IDENTITIES:
        with _client(oss, identity) as c:
            r = route.call(c, data)
            if identity == NONE:
                error(r, 401, E.CERT_MISSING)
                continue
            expected = {OTHER: route.other, VISA: route.norole, ADMIN: route.admin, AGENT: route.agent}[identity]
            if expected is None:
                assert 200 <= r.status_code < 300, (identity, r.status_code, r.text[:300])
                continue
            error(r, *expected)
            if route.unknown is not None and expected[1] is not E.NO_PERMISSION:
                twin_data = route.unknown(data)
                twin = route.call(c, twin_data)
                asked, twin_asked = (data.get("doc") or "oss-demo"), (twin_data.get("doc") or twin_data["workflow"])
                assert _shape(twin, twin_asked) == _shape(r, asked), (identity, twin.text, r.text)  # no oracle


def _page_message(response: httpx.Response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text))


@pytest.mark.parametrize("key", sorted(PAGES), ids=[f"{m} {p}" for m, p in sorted(PAGES)])
def test_signing_pages(oss: Oss, key: tuple[str, str]) -> None:
    method, path = key
    data = _waiting(oss)
    other = _waiting(oss)  # another link: its document is not this link's
    bad_token = "A" * 43
    for identity in IDENTITIES:
        with _client(oss, identity) as c:
            url = "/oss" + path.replace("{token}", bad_token).replace("{document_id}", data["doc"])
            r = c.request(method, url, data={"code": "000000", "motif": "x"} if method == "POST" else None)
            assert r.status_code == E.OSS_LINK_INVALID.http_status, (identity, r.status_code, r.text[:300])
            assert E.OSS_LINK_INVALID.message in _page_message(r), identity
            if path.endswith("{document_id}"):
                foreign = c.get(f"/oss/signature/{data['token']}/documents/{other['doc']}")
                unknown = c.get(f"/oss/signature/{data['token']}/documents/{UNKNOWN_DOC}")
                assert foreign.status_code == unknown.status_code == E.DOCUMENT_NOT_FOUND.http_status, identity
                assert _page_message(foreign) == _page_message(unknown), identity
                assert c.get(f"/oss/signature/{data['token']}/documents/{data['doc']}").status_code == 200
            elif method == "GET":
                assert c.get(f"/oss/signature/{data['token']}").status_code == 200, identity


@pytest.mark.parametrize("key", sorted(PUBLIC), ids=[f"{m} {p}" for m, p in sorted(PUBLIC)])
def test_public_routes(oss: Oss, key: tuple[str, str]) -> None:
    method, path = key
    for identity in IDENTITIES:
        with _client(oss, identity) as c:
            r = c.request(method, "/oss" + path)
            assert r.status_code == 200, (identity, r.status_code)
