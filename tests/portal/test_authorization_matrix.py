"""The authorization matrix of every portal route, against the real server over TLS, as in
``tests/api/rest/test_authorization_matrix.py``. The routes are enumerated from the application
(``create_portal_app``): a route without its line here fails :func:`test_every_route_has_an_entry`.

Identities, all by client certificate (no Basic: the login throttling does not come into play): none, a user of
another subscriber (``agent@autre``), a user of the subscriber without the role, the right role. The portal's wire
format is an HTML page with the catalogue's status and French message (JSON for the signing endpoints).

- document pages and actions: another subscriber's user and a user without a role on the circuit get exactly the
  page of a document id that does not exist (404); the right role gets the page, the file or the redirection;
- administration pages: non-administrators (and the admin of another subscriber) get « access denied » (the same
  for a SIREN that does not exist); the subscriber admin gets the page (or, for a POST, is past the authorization:
  the redirection or the form's own validation message);
- pages every authenticated user has (dashboard, deposit form, signing list): 200, showing only what the caller
  may see; the public pages (OTP link, download link, accessibility, static files): the same answer for everyone.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from parafe.domain.errors import E, ErrorDef
from parafe.portal import create_portal_app
from tests.api.routes import routes_of
from tests.conftest import LiveServer
from tests.fixtures.files import pdf_bytes

AGENT = "agent@demo.parafe.test"
VISA = "visa@demo.parafe.test"
SIGNER = "signataire@demo.parafe.test"
ADMIN = "admin@demo.parafe.test"
OTHER = "agent@autre.parafe.test"
NONE = "none"
SIREN = "123456789"
UNKNOWN_ID = 199999999
UNKNOWN_SIREN = "999999999"
Answer = int | tuple[int, ErrorDef]
PASSED_AUTHORIZATION = -1  # admin POSTs: any answer but 401/403/404 (redirection or the form's own message)


@dataclass
class Route:
    """``path(d)`` → the URL; ``hidden``: OTHER and ``norole`` get the answer of an unknown id (``twin``)."""

    path: Callable[[dict[str, Any]], str]
    right: str
    ok: Answer
    norole: str = VISA
    other: Answer | None = None  # when not hidden
    norole_answer: Answer | None = None  # when not hidden
    prepare: Callable[[LiveServer], dict[str, Any]] | None = None
    form: dict[str, Any] | None = None
    json: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    twin: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    files: bool = False
    hidden: ErrorDef = E.DOCUMENT_NOT_FOUND  # what an unknown (or hidden) id answers
    anonymous: Answer = (401, E.CERT_MISSING)


def _deposit(server: LiveServer, circuit: str = "otp") -> int:
    name = f"matrice-{uuid.uuid4().hex[:8]}.pdf"
    with server.client(AGENT) as c:
        r = c.post(f"/parapheur-ws/rest/v1/documents/v2/{SIREN}/{circuit}/upload",
                   files={"content": (name, pdf_bytes(text=name), "application/pdf")})
        assert r.status_code == 200, r.text
    return int(r.text)


def _otp_doc(server: LiveServer) -> dict[str, Any]:
    return {"doc": _deposit(server)}


def _state(server: LiveServer, doc: int, wanted: str, timeout: float = 60) -> None:
    """Wait until the in-process worker has brought ``doc`` to the state labelled ``wanted``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.client(AGENT) as c:
            history = c.get(f"/parapheur-ws/rest/v1/documents/v2/{doc}/history").json()
        if history and history[-1]["stateName"] == wanted:
            return
        time.sleep(0.3)
    raise AssertionError(f"document {doc} never reached « {wanted} »: {history}")


def _with_annex(server: LiveServer) -> dict[str, Any]:
    """A document deposited through the portal with one annex."""
    with server.client(AGENT, follow_redirects=False) as c:
        r = c.post("/deposer", data={"circuit": f"{SIREN}/otp", "csrf": _csrf(c)}, files=[
            ("fichier", (f"p-{uuid.uuid4().hex[:8]}.pdf", pdf_bytes(), "application/pdf")),
            ("annexes", ("annexe.pdf", pdf_bytes(text="annexe"), "application/pdf"))])
        assert r.status_code == 303, r.text[:500]
    found = re.search(r"/documents/(\d+)", r.headers["location"])
    assert found, r.headers["location"]
    return {"doc": int(found.group(1))}


def _at_visa(server: LiveServer) -> dict[str, Any]:
    doc = _deposit(server, "bureautique")
    _state(server, doc, "Envoyé pour visa")
    return {"doc": doc}


def _at_signature(server: LiveServer) -> dict[str, Any]:
    doc = _at_visa(server)["doc"]
    with server.client(VISA) as c:
        r = c.post(f"/documents/{doc}/viser", data={"csrf": _csrf(c)})
        assert r.status_code == 303, r.text[:500]
    _state(server, doc, "Envoyé pour signature")
    return {"doc": doc}


def _session(server: LiveServer) -> dict[str, Any]:
    """A document at the signature, prepared by its signer: the session and the signature values of its key."""
    import base64

    from parafe.signing.keys import load_signer

    data = _at_signature(server)
    key = load_signer(server.home.path / "demo" / f"{SIGNER}.p12", "demo")
    with server.client(SIGNER) as c:
        r = c.post("/signature/preparer", json={"ids": [data["doc"]], "certificates": [_signer_pem(server)]},
                   headers={"X-CSRF-Token": _csrf(c)})
        assert r.status_code == 200, r.text
    prepared = r.json()
    values = {str(d["id"]): [base64.b64encode(key.sign_raw(base64.b64decode(q["data_to_sign"]))).decode()
                             for q in d["requests"]] for d in prepared["documents"]}
    return {**data, "session": prepared["session"], "values": values}


def _signer_pem(server: LiveServer) -> str:
    return (server.home.path / "demo" / f"{SIGNER}.pem").read_text()


def _csrf(c: httpx.Client, path: str = "/tableau-de-bord") -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', c.get(path).text)
    return found.group(1) if found else ""


def _doc_twin(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "doc": UNKNOWN_ID}


def _siren_twin(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "siren": UNKNOWN_SIREN}


def _doc_get(suffix: str, ok: Answer = 200, hidden: ErrorDef = E.DOCUMENT_NOT_FOUND) -> Route:
    return Route(lambda d: f"/documents/{d['doc']}{suffix}", ADMIN, ok, prepare=_otp_doc, twin=_doc_twin,
                 hidden=hidden)


def _own(path: str, answer: Answer, form: dict[str, Any] | None = None, json: dict[str, Any] | None = None
         ) -> Route:
    """A route on the caller's own settings: every authenticated user gets the same answer."""
    return Route(lambda d: path, AGENT, answer, other=answer, norole_answer=answer, form=form,
                 json=(lambda d: json) if json is not None else None)


DENIED = (403, E.AUTH_ACCESS_DENIED)
SESSION = (410, E.SIGNING_SESSION_INVALID)


def _admin(suffix: str, form: dict[str, Any] | None = None, ok: Answer | None = None) -> Route:
    expected = ok if ok is not None else 200 if form is None else PASSED_AUTHORIZATION
    return Route(lambda d: f"/admin/{d.get('siren', SIREN)}{suffix}", ADMIN, expected, other=DENIED,
                 norole_answer=DENIED, form=form, twin=_siren_twin)


ROUTES: dict[tuple[str, str], Route] = {
    # every authenticated user
    ("GET", "/"): Route(lambda d: "/", AGENT, 303, other=303, norole_answer=303, anonymous=303),
    ("GET", "/tableau-de-bord"): Route(lambda d: "/tableau-de-bord", AGENT, 200, other=200, norole_answer=200),
    ("GET", "/deposer"): Route(lambda d: "/deposer", AGENT, 200, other=200, norole_answer=200),
    ("POST", "/deposer"): Route(lambda d: "/deposer", AGENT, 303, other=(403, E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN),
                                norole_answer=(403, E.NO_PERMISSION), form={"circuit": f"{SIREN}/otp"},
                                files=True),
    ("GET", "/signature"): Route(lambda d: f"/signature?ids={d['doc']}", SIGNER, 200, other=200, norole_answer=200,
                                 prepare=_at_signature),
    ("GET", "/admin/fragments/etape"): Route(lambda d: "/admin/fragments/etape", ADMIN, 200, other=200,
                                             norole_answer=200),
    # documents
    ("GET", "/documents/{doc_id:int}"): _doc_get(""),
    ("GET", "/documents/{doc_id:int}/contenu"): _doc_get("/contenu", hidden=E.NODE_NOT_FOUND),
    ("GET", "/documents/{doc_id:int}/telecharger"): _doc_get("/telecharger", hidden=E.NODE_NOT_FOUND),
    ("GET", "/documents/{doc_id:int}/original"): _doc_get("/original"),
    ("GET", "/documents/{doc_id:int}/fdc"): _doc_get("/fdc"),
    ("GET", "/documents/{doc_id:int}/verification"): _doc_get("/verification"),
    ("GET", "/documents/{doc_id:int}/resume"): _doc_get("/resume"),
    # a PDF has no detached signature (XAdES circuits only): its owner gets the catalogue's « not found » too
    ("GET", "/documents/{doc_id:int}/signature-detachee"): _doc_get("/signature-detachee",
                                                                    (404, E.DOCUMENT_NOT_FOUND)),
    ("GET", "/documents/{doc_id:int}/annexes/{position:int}"): Route(
        lambda d: f"/documents/{d['doc']}/annexes/0", ADMIN, 200, prepare=_with_annex, twin=_doc_twin),
    ("POST", "/documents/{doc_id:int}/viser"): Route(lambda d: f"/documents/{d['doc']}/viser", VISA, 303,
                                                      norole=AGENT, norole_answer=(409, E.STEP_NOT_ACTIONABLE),
                                                      prepare=_at_visa, form={}, twin=_doc_twin),
    ("POST", "/documents/{doc_id:int}/rejeter"): Route(lambda d: f"/documents/{d['doc']}/rejeter", VISA, 303,
                                                        norole=AGENT, norole_answer=(409, E.STEP_NOT_ACTIONABLE),
                                                        prepare=_at_visa, form={"motif": "Non conforme"},
                                                        twin=_doc_twin),
    ("POST", "/documents/{doc_id:int}/refuser"): Route(lambda d: f"/documents/{d['doc']}/refuser", SIGNER, 303,
                                                        norole=VISA, norole_answer=(409, E.STEP_NOT_ACTIONABLE),
                                                        prepare=_at_signature, form={"motif": "Non conforme"},
                                                        twin=_doc_twin),
    ("POST", "/documents/{doc_id:int}/supprimer"): Route(lambda d: f"/documents/{d['doc']}/supprimer", AGENT, 303,
                                                          prepare=_otp_doc, form={}, twin=_doc_twin),
    ("POST", "/documents/{doc_id:int}/relancer"): Route(lambda d: f"/documents/{d['doc']}/relancer", ADMIN,
                                                         PASSED_AUTHORIZATION, prepare=_otp_doc, form={},
                                                         twin=_doc_twin),
    ("POST", "/signature/preparer"): Route(lambda d: "/signature/preparer", SIGNER, 200, prepare=_at_signature,
                                           norole_answer=(409, E.STEP_NOT_ACTIONABLE),
                                           json=lambda d: {"ids": [d["doc"]], "certificates": [d["pem"]]},
                                           twin=_doc_twin),
    # the signer's own session: anyone else gets exactly the answer of a session that does not exist
    ("POST", "/signature/finaliser"): Route(lambda d: "/signature/finaliser", SIGNER, 200, other=SESSION,
                                            norole_answer=SESSION, prepare=_session,
                                            json=lambda d: {"session": d["session"], "signatures": d["values"]},
                                            twin=lambda d: {**d, "session": "0" * 64}),
    # the caller's own settings (absence and delegation, visa preferences, access keys): each user sees and
    # changes only their own; empty forms get the form's own message, the same for everyone
    ("GET", "/absence"): _own("/absence", 200),
    ("POST", "/absence"): _own("/absence", 400, form={}),
    ("POST", "/absence/recapitulatif"): _own("/absence/recapitulatif", 303, form={}),
    ("POST", "/absence/{delegation_id:int}/terminer"): _own(f"/absence/{UNKNOWN_ID}/terminer",
                                                             (404, E.DELEGATION_NOT_FOUND), form={}),
    ("GET", "/visa"): _own("/visa", 200),
    ("POST", "/visa"): _own("/visa", 400, form={}),
    ("GET", "/cles-d-acces"): _own("/cles-d-acces", 200),
    ("POST", "/cles-d-acces/options"): _own("/cles-d-acces/options", 200, json={}),
    ("POST", "/cles-d-acces/enregistrer"): _own("/cles-d-acces/enregistrer", (400, E.BAD_REQUEST), json={}),
    ("POST", "/signature/cle/preparer"): _own("/signature/cle/preparer", (400, E.BAD_REQUEST), json={}),
    ("POST", "/signature/cle/finaliser"): _own("/signature/cle/finaliser", (400, E.BAD_REQUEST), json={}),
    ("POST", "/admin/cles-d-acces/{passkey_id}/revoquer"): _own(f"/admin/cles-d-acces/{UNKNOWN_ID}/revoquer",
                                                                 (404, E.PASSKEY_NOT_FOUND), form={}),
    ("POST", "/admin/cles-d-acces/{passkey_id}/valider"): _own(f"/admin/cles-d-acces/{UNKNOWN_ID}/valider",
                                                                (404, E.PASSKEY_NOT_FOUND), form={}),
    # administration
    ("GET", "/admin/{siren}/clients"): _admin("/clients"),
    ("GET", "/admin/{siren}/clients/{fingerprint}"): _admin("/clients/" + "0" * 64,
                                                            ok=(404, E.COMPLIANCE_CLIENT_UNKNOWN)),
    ("GET", "/admin"): Route(lambda d: "/admin", ADMIN, 303, other=DENIED, norole_answer=DENIED),
    ("GET", "/admin/{siren}/circuits"): _admin("/circuits"),
    ("GET", "/admin/{siren}/circuits/nouveau"): _admin("/circuits/nouveau"),
    ("GET", "/admin/{siren}/circuits/{key}"): _admin("/circuits/otp"),
    ("GET", "/admin/{siren}/circuits/{key}/metadonnees"): _admin("/circuits/otp/metadonnees"),
    ("GET", "/admin/{siren}/groupes"): _admin("/groupes"),
    ("GET", "/admin/{siren}/sms"): _admin("/sms"),
    ("GET", "/admin/{siren}/utilisateurs"): _admin("/utilisateurs"),
    ("GET", "/admin/{siren}/utilisateurs/{email}"): _admin(f"/utilisateurs/{AGENT}"),
    ("POST", "/admin/{siren}/circuits/nouveau"): _admin("/circuits/nouveau", {"key": "", "type": "BUREAUTIQUE_PDF"}),
    ("POST", "/admin/{siren}/circuits/{key}"): _admin("/circuits/otp", {"name": ""}),
    ("POST", "/admin/{siren}/circuits/{key}/metadonnees"): _admin("/circuits/otp/metadonnees", {"name-0": "!"}),
    ("POST", "/admin/{siren}/circuits/{key}/supprimer"): _admin("/circuits/inexistant/supprimer", {},
                                                                (404, E.ADMIN_CIRCUIT_UNKNOWN)),
    ("POST", "/admin/{siren}/groupes"): _admin("/groupes", {"name": ""}),
    ("POST", "/admin/{siren}/utilisateurs"): _admin("/utilisateurs", {"email": "pas-un-courriel"}),
    ("POST", "/admin/{siren}/utilisateurs/{email}"): _admin(f"/utilisateurs/{AGENT}", {"firstname": ""}),
    ("POST", "/admin/{siren}/utilisateurs/{email}/certificats"): _admin(f"/utilisateurs/{AGENT}/certificats", {}),
}

# Public: the caller's identity plays no part (the OTP link's token, the download link's token, static files).
PUBLIC: dict[tuple[str, str], tuple[str, int]] = {
    ("GET", "/accessibilite"): ("/accessibilite", 200),
    ("GET", "/connexion"): ("/connexion", 401),  # the Basic challenge of the admin login, for everyone
    ("GET", "/boucle-sms/documentView"): (f"/boucle-sms/documentView?id={'A' * 43}", 404),
    ("POST", "/boucle-sms/documentView"): (f"/boucle-sms/documentView?id={'A' * 43}", 404),
    ("GET", "/boucle-sms/retour"): (f"/boucle-sms/retour?id={'A' * 43}", 404),
    ("GET", "/boucle-sms/document"): (f"/boucle-sms/document?id={'A' * 43}&doc=1", 404),
    ("GET", "/telechargement/{token:str}"): (f"/telechargement/{'A' * 43}", 404),
    ("MOUNT", "/static"): ("/static/portal.css", 404),
}


def test_every_route_has_an_entry() -> None:
    app = create_portal_app(None)  # type: ignore[arg-type]
    inner = getattr(app, "app", app)
    routes = set(routes_of(inner.routes))
    listed = set(ROUTES) | set(PUBLIC)
    assert routes == listed, (routes ^ listed, "a route without its line in the authorization matrix")


def _text(response: httpx.Response) -> str:
    text = re.sub(r'<meta name="csrf-token" content="[^"]+">', "", response.text)
    text = re.sub(r'name="csrf" value="[^"]+"', "", text)
    return html.unescape(text)


def _call(server: LiveServer, identity: str, route: Route, key: tuple[str, str], data: dict[str, Any]
          ) -> httpx.Response:
    method = key[0]
    with server.client(None if identity == NONE else identity, follow_redirects=False) as c:
        if method == "GET":
            return c.get(route.path(data))
        token = _csrf(c) if identity != NONE else ""
        if route.json is not None:
            return c.post(route.path(data), json=route.json(data), headers={"X-CSRF-Token": token})
        files = {"fichier": (f"m-{uuid.uuid4().hex[:8]}.pdf", pdf_bytes(), "application/pdf")} if route.files \
            else None
        return c.post(route.path(data), data={**(route.form or {}), "csrf": token}, files=files)


def _check(response: httpx.Response, expected: Answer, who: str) -> None:
    if expected == PASSED_AUTHORIZATION:
        assert response.status_code not in (401, 403, 404), (who, response.status_code, response.text[:400])
        return
    if isinstance(expected, int):
        assert response.status_code == expected, (who, response.status_code, _text(response)[:600])
        return
    status, entry = expected
    assert response.status_code == status, (who, response.status_code, _text(response)[:600])
    text = _text(response)
    if response.headers.get("content-type", "").startswith("application/json"):
        assert response.json()["errorCode"] == entry.code, (who, text[:600])
    else:  # the error page names the catalogue code (and, on most pages, its message)
        assert f"<strong>{entry.code}</strong>" in text or ("{" not in entry.message and entry.message in text), (
            who, entry.code, re.findall(r"<strong>(\d+)</strong>", text), text[:300])


@pytest.mark.parametrize("key", list(ROUTES), ids=[f"{m} {p}" for m, p in ROUTES])
def test_authorization_matrix(portal_server: LiveServer, key: tuple[str, str]) -> None:
    route = ROUTES[key]
    data = route.prepare(portal_server) if route.prepare else {}
    data["pem"] = _signer_pem(portal_server)
    order = [NONE, OTHER, route.norole, route.right]  # the right role last: it may change the document
    for identity in order:
        response = _call(portal_server, identity, route, key, data)
        if identity == NONE:
            _check(response, route.anonymous, identity)
            continue
        if identity == route.right:
            _check(response, route.ok, identity)
            continue
        expected = route.other if identity == OTHER else route.norole_answer
        if expected is None:  # hidden: exactly the answer of an id that does not exist
            _check(response, (route.hidden.http_status, route.hidden), identity)
        else:
            _check(response, expected, identity)
        if route.twin is not None and (expected is None or expected in (DENIED, SESSION)):
            twin = _call(portal_server, identity, route, key, route.twin(data))
            assert twin.status_code == response.status_code, (identity, twin.status_code, response.status_code)
            if route.json is None:
                assert _text(twin).replace(str(UNKNOWN_ID), "<id>").replace(UNKNOWN_SIREN, "<siren>") == \
                    _text(response).replace(str(data.get("doc")), "<id>").replace(SIREN, "<siren>"), identity
            else:
                assert twin.json() == response.json(), identity


@pytest.mark.parametrize("key", list(PUBLIC), ids=[f"{m} {p}" for m, p in PUBLIC])
def test_public_routes(portal_server: LiveServer, key: tuple[str, str]) -> None:
    path, status = PUBLIC[key]
    if key[0] == "MOUNT":
        from parafe.portal.web import static_url

        path, status = static_url("portal.css"), 200
    answers = []
    for identity in (NONE, OTHER, VISA, ADMIN):
        with portal_server.client(None if identity == NONE else identity, follow_redirects=False) as c:
            method = "GET" if key[0] == "MOUNT" else key[0]
            r = c.request(method, path, data={"action": "code"} if method == "POST" else None)
        assert r.status_code == status, (identity, r.status_code, r.text[:300])
        answers.append(r.status_code)
    assert len(set(answers)) == 1
