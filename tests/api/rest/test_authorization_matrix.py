"""The authorization matrix of every REST route (R1–R21), against the real server over TLS:

- no client certificate → 401, code 161;
- a user of another subscriber → exactly "unknown" (404) for a document, "unknown or forbidden subscriber"
  (403) for a siren;
- a user of the subscriber without a role on the circuit (``visa@``: valideur of ``bureautique`` only) → 404
  for the documents of other circuits, 403 for operations reserved to agents or admins;
- the subscriber admin (certificate, no circuit role) → success.

The documents are in the ``otp`` circuit (plus a circuit with a metadata step for R4); what the workflow would
produce (an acknowledgement, a state) is created directly in the database.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from parafe.db.models import User
from parafe.domain.errors import E, ErrorDef
from parafe.domain.states import State
from parafe.services.helios import returns
from tests.api.rest.conftest import Rest
from tests.api.rest.helpers import (
    ADMIN,
    AGENT,
    OTHER,
    SIGNER,
    SIREN,
    V1,
    VISA,
    deposit,
    make_circuit,
    meta_xml,
    otp_xml,
    set_state,
    unique,
)
from tests.fixtures.files import pdf_bytes

NONE = "none"
IDENTITIES = (NONE, OTHER, VISA, ADMIN)
JOHN = {"firstname": "John", "lastname": "Doe", "phonenumber": "0606060606", "email": "john.doe@mail.fr"}


@dataclass
class Route:
    name: str
    call: Callable[[httpx.Client, dict[str, Any]], httpx.Response]
    other: tuple[int, ErrorDef] | None  # None: allowed (2xx)
    norole: tuple[int, ErrorDef] | None  # None: allowed (2xx)
    prepare: Callable[[Rest], dict[str, Any]] | None = None


def _doc(rest: Rest, circuit: str = "otp") -> dict[str, Any]:
    with rest.client(AGENT) as c:
        return {"doc": deposit(c, circuit)}


def _otp_doc(rest: Rest) -> dict[str, Any]:
    with rest.client(AGENT) as c:
        doc = deposit(c, "otp")
        r = c.put(f"{V1}/documents/v2/otp/{doc}/metadata/define", files={"otpinformation": ("m.xml", otp_xml(JOHN))})
        assert r.status_code == 200, r.text
    return {"doc": doc}


def _meta_doc(rest: Rest) -> dict[str, Any]:
    make_circuit(rest.ctx, "meta-matrix", "BUREAUTIQUE_PDF", ["metadata", "filing"],
                 model=[{"name": "TEXT001", "kind": "text"}])
    with rest.client(AGENT) as c:
        doc = deposit(c, "meta-matrix")
    set_state(rest.ctx, doc, State.READY_FOR_METADATA, actor="parapheur parapheur")
    return {"doc": doc}


def _ack_doc(rest: Rest) -> dict[str, Any]:
    found = _doc(rest)
    returns.add_return(rest.ctx, kind="ack", data=b"<PES_ACQUIT/>", name="ACQUIT.xml", document_id=found["doc"])
    return found


def _flow(kind: returns.ReturnKind) -> Callable[[Rest], dict[str, Any]]:
    def prepare(rest: Rest) -> dict[str, Any]:
        return {"doc": returns.add_return(rest.ctx, kind=kind, data=b"<flux/>", name="flux.xml", siren=SIREN)}
    return prepare


def _all_users(rest: Rest) -> dict[str, Any]:
    with rest.ctx.db.read() as s:
        users = s.scalars(select(User).where(User.subscriber_id == 1, User.active.is_(True))).all()
        return {"users": [{"authenticationType": u.authentication_type, "email": u.email,
                           "firstName": u.firstname, "lastName": u.lastname, "groups": []} for u in users]}


def _seen_clients(rest: Rest) -> dict[str, Any]:
    for email in (OTHER, VISA, ADMIN):  # a client's report exists once the connectors have seen it
        with rest.client(email) as c:
            c.get(f"{V1}/documents/v2/{SIREN}/ack/remaining")
    return {}


S05 = (403, E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN)
NOT_FOUND = (404, E.DOCUMENT_NOT_FOUND)
CIRCUIT = json.dumps({"type": "BUREAUTIQUE_PDF", "steps": [{"step": "signature", "members": [SIGNER]}]})

ROUTES = [
    Route("R1 download", lambda c, d: c.get(f"{V1}/documents/v2/{d['doc']}/download"),
          (404, E.NODE_NOT_FOUND), (404, E.NODE_NOT_FOUND), _doc),
    Route("R1 download zip", lambda c, d: c.get(f"{V1}/documents/v2/{d['doc']}/download?fdc=true&acquit=true"),
          (404, E.NODE_NOT_FOUND), (404, E.NODE_NOT_FOUND), _ack_doc),
    Route("R2 upload", lambda c, d: c.post(f"{V1}/documents/v2/{SIREN}/otp/upload",
                                           files={"content": (unique(), pdf_bytes())}),
          S05, (403, E.NO_PERMISSION)),
    Route("R3 ondemand", lambda c, d: c.post(f"{V1}/documents/ondemand/{SIREN}/upload",
                                             files={"doc": (unique(), pdf_bytes())}, data={"circuit": CIRCUIT}),
          (403, E.UNAUTHORIZED_ACTIONS), (403, E.UNAUTHORIZED_DEPOSIT)),
    Route("R4 metadata", lambda c, d: c.put(f"{V1}/documents/v2/{d['doc']}/metadata/define",
                                            files={"meta": ("m.xml", meta_xml(TEXT001="x"))}),
          NOT_FOUND, NOT_FOUND, _meta_doc),
    Route("R5 otp metadata", lambda c, d: c.put(f"{V1}/documents/v2/otp/{d['doc']}/metadata/define",
                                                files={"otpinformation": ("m.xml", otp_xml(JOHN))}),
          NOT_FOUND, NOT_FOUND, _doc),
    Route("R6 history", lambda c, d: c.get(f"{V1}/documents/v2/{d['doc']}/history"), NOT_FOUND, NOT_FOUND, _doc),
    Route("R7 getFdc", lambda c, d: c.get(f"{V1}/documents/v2/{d['doc']}/getFdc"), NOT_FOUND, NOT_FOUND, _doc),
    Route("R8 metas", lambda c, d: c.get(f"{V1}/documents/{d['doc']}/metas"), NOT_FOUND, NOT_FOUND, _doc),
    Route("R9 delete", lambda c, d: c.delete(f"{V1}/documents/v2/{d['doc']}"), NOT_FOUND, NOT_FOUND, _doc),
    Route("R10 ack", lambda c, d: c.get(f"{V1}/documents/v2/{d['doc']}/ack/download"), NOT_FOUND, NOT_FOUND,
          _ack_doc),
    Route("R11 pes-retour", lambda c, d: c.get(f"{V1}/documents/v2/{d['doc']}/pes-retour/download"),
          NOT_FOUND, NOT_FOUND, _flow("pes_retour")),
    Route("R12 chorus", lambda c, d: c.get(f"{V1}/documents/v2/{d['doc']}/chorus/download"),
          NOT_FOUND, NOT_FOUND, _flow("chorus")),
    Route("R13 ack remaining", lambda c, d: c.get(f"{V1}/documents/v2/{SIREN}/ack/remaining"), S05, None,
          _ack_doc),
    Route("R14 chorus remaining", lambda c, d: c.get(f"{V1}/documents/v2/{SIREN}/chorus/remaining"), S05, S05),
    Route("R15 pes-retour remaining", lambda c, d: c.get(f"{V1}/documents/v2/{SIREN}/pes-retour/remaining"),
          S05, S05),
    Route("R16 refusal", lambda c, d: c.get(f"{V1}/documents/v2/{d['doc']}/comments/refusal"), NOT_FOUND,
          NOT_FOUND, _doc),
    Route("R17 otp url", lambda c, d: c.get(f"{V1}/documents/v2/otp/url", params={"id": d["doc"]}), NOT_FOUND,
          NOT_FOUND, _otp_doc),
    Route("R18 otp upload", lambda c, d: c.post(f"{V1}/documents/v2/otp/{SIREN}/otp/upload", files={
        "document": (unique(), pdf_bytes()), "meta": ("METAS_x.xml", otp_xml(JOHN))}),
          S05, (403, E.NO_PERMISSION)),
    Route("R19 exportUsersData", lambda c, d: c.get(f"{V1}/exportUsersData", params={"siren": SIREN}), S05,
          (403, E.AUTH_ACCESS_DENIED)),
    Route("R20 search", lambda c, d: c.post(f"{V1}/documents/search", json={"siren": SIREN, "circuit": "otp"}),
          S05, (403, E.NO_PERMISSION)),
    Route("R21 synchronization", lambda c, d: c.put(f"{V1}/synchronization/{SIREN}/users", json=d["users"]),
          S05, (403, E.AUTH_ACCESS_DENIED), _all_users),
    # Parafe extensions for integrators (issue 21): each client its own compliance report; getCircuits' twin
    Route("R22 compliance", lambda c, d: c.get(f"{V1}/compliance"), None, None, _seen_clients),
    Route("R23 circuits", lambda c, d: c.get(f"{V1}/documents/v2/{SIREN}/circuits"), S05, None),
    # variants and lists of the live service (D-decisions), issue 18 point 7: every route has its line
    Route("R24 search (GET)", lambda c, d: c.get(f"{V1}/documents/search", params={"siren": SIREN, "circuit": "otp"}),
          S05, (403, E.NO_PERMISSION)),
    Route("R25 metas (v2)", lambda c, d: c.get(f"{V1}/documents/v2/{d['doc']}/metas"), NOT_FOUND, NOT_FOUND, _doc),
    Route("R26 signed remaining", lambda c, d: c.get(f"{V1}/documents/v2/{SIREN}/signed/remaining"), S05, None),
    Route("R27 sms history", lambda c, d: c.get(f"{V1}/documents/v2/{SIREN}/sms/history"), S05, None),
]

# The (method, path) of each line, below the ``/parapheur-ws`` mount, for the coverage test.
PATHS = {
    "R1 download": ("GET", "/rest/v1/documents/v2/{document_id}/download"),
    "R1 download zip": ("GET", "/rest/v1/documents/v2/{document_id}/download"),
    "R2 upload": ("POST", "/rest/v1/documents/v2/{siren}/{circuit_id}/upload"),
    "R3 ondemand": ("POST", "/rest/v1/documents/ondemand/{siren}/upload"),
    "R4 metadata": ("PUT", "/rest/v1/documents/v2/{document_id}/metadata/define"),
    "R5 otp metadata": ("PUT", "/rest/v1/documents/v2/otp/{document_id}/metadata/define"),
    "R6 history": ("GET", "/rest/v1/documents/v2/{document_id}/history"),
    "R7 getFdc": ("GET", "/rest/v1/documents/v2/{document_id}/getFdc"),
    "R8 metas": ("GET", "/rest/v1/documents/{document_id}/metas"),
    "R9 delete": ("DELETE", "/rest/v1/documents/v2/{document_id}"),
    "R10 ack": ("GET", "/rest/v1/documents/v2/{document_id}/ack/download"),
    "R11 pes-retour": ("GET", "/rest/v1/documents/v2/{document_id}/pes-retour/download"),
    "R12 chorus": ("GET", "/rest/v1/documents/v2/{document_id}/chorus/download"),
    "R13 ack remaining": ("GET", "/rest/v1/documents/v2/{siren}/ack/remaining"),
    "R14 chorus remaining": ("GET", "/rest/v1/documents/v2/{siren}/chorus/remaining"),
    "R15 pes-retour remaining": ("GET", "/rest/v1/documents/v2/{siren}/pes-retour/remaining"),
    "R16 refusal": ("GET", "/rest/v1/documents/v2/{document_id}/comments/refusal"),
    "R17 otp url": ("GET", "/rest/v1/documents/v2/otp/url"),
    "R18 otp upload": ("POST", "/rest/v1/documents/v2/otp/{siren}/{circuit_id}/upload"),
    "R19 exportUsersData": ("GET", "/rest/v1/exportUsersData"),
    "R20 search": ("POST", "/rest/v1/documents/search"),
    "R21 synchronization": ("PUT", "/rest/v1/synchronization/{siren}/users"),
    "R22 compliance": ("GET", "/rest/v1/compliance"),
    "R23 circuits": ("GET", "/rest/v1/documents/v2/{siren}/circuits"),
    "R24 search (GET)": ("GET", "/rest/v1/documents/search"),
    "R25 metas (v2)": ("GET", "/rest/v1/documents/v2/{document_id}/metas"),
    "R26 signed remaining": ("GET", "/rest/v1/documents/v2/{siren}/signed/remaining"),
    "R27 sms history": ("GET", "/rest/v1/documents/v2/{siren}/sms/history"),
}
# Public: the API documentation and its static files (no data), the redirection of the root to it.
PUBLIC = {("GET", "/"), ("GET", "/docs"), ("GET", "/openapi.json"), ("MOUNT", "/static")}


def test_every_route_has_an_entry() -> None:
    """The routes of the REST application are exactly the matrix's lines (plus the public documentation)."""
    from parafe.connectors.rest import create_rest_app
    from tests.api.routes import routes_of

    app: Any = create_rest_app(None)  # type: ignore[arg-type]
    while not hasattr(app, "routes"):  # the REST app's own middlewares
        app = app.app
    routes = set(routes_of(app.routes))
    assert set(PATHS) == {r.name for r in ROUTES}
    listed = set(PATHS.values()) | PUBLIC
    assert routes == listed, (routes ^ listed, "a route without its line in the authorization matrix")


def _client(rest: Rest, identity: str) -> httpx.Client:
    return rest.client(None if identity == NONE else identity)


@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_authorization_matrix(rest: Rest, route: Route) -> None:
    data = route.prepare(rest) if route.prepare else {}
    for identity in IDENTITIES:  # the admin last: some calls change state (delete, synchronization)
        with _client(rest, identity) as c:
            r = route.call(c, data)
        if identity == NONE:
            expected: tuple[int, ErrorDef] | None = (401, E.CERT_MISSING)
        elif identity == OTHER:
            expected = route.other
        elif identity == VISA:
            expected = route.norole
        else:
            expected = None
        if expected is None:
            assert 200 <= r.status_code < 300, (identity, r.status_code, r.text)
            if route.name == "R13 ack remaining" and identity == VISA:
                assert data["doc"] not in r.json()  # filtered: the document is in a circuit it has no role on
            if route.name == "R13 ack remaining" and identity == ADMIN:
                assert data["doc"] in r.json()
            if route.name == "R22 compliance":  # its own report, never another client's
                assert r.json()["email"] == identity
                assert r.json()["accounts"][0]["email"] == identity
            if route.name == "R23 circuits":
                keys = {c["id"] for c in r.json()}
                assert keys == ({"bureautique"} if identity == VISA else keys | {"otp", "bureautique"})
            continue
        status, entry = expected
        assert r.status_code == status, (identity, r.status_code, r.text)
        body = r.json()
        assert body["errorCode"] == entry.code, (identity, body)
        assert body["userFriendlyMessage"] == entry.message, (identity, body)
