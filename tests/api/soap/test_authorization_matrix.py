"""The authorization matrix of every SOAP operation (the WSDL's 31, and the dispatch table of
``parafe.connectors.soap.ops``), against the real server over TLS, as in
``tests/api/rest/test_authorization_matrix.py``:

- no client certificate → HTTP 401, ``soap:Server`` fault with the catalogue's message (161);
- a user of another subscriber → the fault an unknown document or subscriber gets: for an operation on a
  document, the answer (status, ``faultstring``, code in ``details``) is the same as for an id that does not exist;
- a user of the subscriber without a role on the circuit (``visa@``: valideur of ``bureautique`` only) → the same
  « unknown » fault for the documents of the ``otp`` circuit, the « no permission » faults for deposits;
- the subscriber admin (certificate, no circuit role) → the operation's response.

The operations are enumerated from the application (WSDL contract and dispatch table): an operation without an
entry here fails :func:`test_every_operation_has_an_entry`.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from parafe.config import Settings
from parafe.connectors.soap import faults
from parafe.connectors.soap.contract import CONTRACT, NS
from parafe.connectors.soap.ops import load_all
from parafe.context import AppContext
from parafe.domain.errors import E, ErrorDef, ParafeError
from parafe.domain.states import State
from parafe.services.helios import returns
from tests.api.rest.helpers import deposit, make_circuit, meta_xml, otp_xml, set_state
from tests.api.soap.soaputil import ADMIN, AGENT, OTHER, SIREN, body_of, envelope, fault, post
from tests.conftest import LiveServer
from tests.fixtures.files import pdf_bytes

VISA = "visa@demo.parafe.test"
SIGNER = "signataire@demo.parafe.test"
NONE = "none"
IDENTITIES = (NONE, OTHER, VISA, ADMIN)
UNKNOWN_ID = "999999999"
JOHN = {"firstname": "John", "lastname": "Doe", "phonenumber": "0606060606", "email": "john.doe@mail.fr"}
Expected = ErrorDef | None  # None: the operation answers


@dataclass
class Ctx:
    server: LiveServer
    ctx: AppContext

    def client(self, email: str | None) -> httpx.Client:
        return self.server.client(email)


@pytest.fixture(scope="module")
def soap(soap_server: LiveServer) -> Iterator[Ctx]:
    home = soap_server.home
    ctx = AppContext.from_settings(Settings(home=home.path, database_url=home.database_url))
    try:
        yield Ctx(soap_server, ctx)
    finally:
        ctx.close()


def _name() -> str:
    return f"doc-{uuid.uuid4().hex[:10]}.pdf"


def _vo(name: str, data: bytes) -> str:
    return f"<dataHandler>{base64.b64encode(data).decode()}</dataHandler><filename>{name}</filename>"


def _doc(s: Ctx, circuit: str = "otp") -> dict[str, Any]:
    with s.client(AGENT) as c:
        return {"doc": str(deposit(c, circuit))}


def _otp_doc(s: Ctx) -> dict[str, Any]:
    found = _doc(s)
    with s.client(AGENT) as c:
        r = c.put(f"/parapheur-ws/rest/v1/documents/v2/otp/{found['doc']}/metadata/define",
                  files={"otpinformation": ("m.xml", otp_xml(JOHN))})
        assert r.status_code == 200, r.text
    return found


def _meta_doc(s: Ctx) -> dict[str, Any]:
    make_circuit(s.ctx, "meta-matrix", "BUREAUTIQUE_PDF", ["metadata", "filing"],
                 model=[{"name": "TEXT001", "kind": "text"}])
    found = _doc(s, "meta-matrix")
    set_state(s.ctx, int(found["doc"]), State.READY_FOR_METADATA, actor="parapheur parapheur")
    return found


def _refused_doc(s: Ctx) -> dict[str, Any]:
    found = _doc(s)
    set_state(s.ctx, int(found["doc"]), State.REFUSED, refusal="Pas conforme")
    return found


def _ack_doc(s: Ctx) -> dict[str, Any]:
    found = _doc(s)
    returns.add_return(s.ctx, kind="ack", data=b"<PES_ACQUIT/>", name="ACQUIT.xml", document_id=int(found["doc"]))
    return found


def _flow(kind: returns.ReturnKind) -> Callable[[Ctx], dict[str, Any]]:
    def prepare(s: Ctx) -> dict[str, Any]:
        return {"doc": str(returns.add_return(s.ctx, kind=kind, data=b"<flux/>", name="flux.xml", siren=SIREN))}
    return prepare


def _users(s: Ctx) -> dict[str, Any]:
    with s.client(ADMIN) as c:
        r = c.get("/parapheur-ws/rest/v1/exportUsersData", params={"siren": SIREN})
        assert r.status_code == 200, r.text
    return {"users": json.dumps(r.json())}


@dataclass
class Op:
    inner: Callable[[dict[str, Any]], str]
    other: Expected
    norole: Expected
    prepare: Callable[[Ctx], dict[str, Any]] | None = None
    on_document: str | None = None  # the parameter naming the document: the foreign id must answer as unknown


S05 = E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN
NOT_FOUND = E.DOCUMENT_NOT_FOUND


def _doc_op(tag: str = "documentId", extra: str = "") -> Callable[[dict[str, Any]], str]:
    return lambda d: f"<{tag}>{d['doc']}</{tag}>{extra}"


def _siren_op(extra: str = "") -> Callable[[dict[str, Any]], str]:
    return lambda d: f"<siren>{SIREN}</siren>{extra}"


def _upload(d: dict[str, Any]) -> str:
    name = _name()
    return (f"<label>matrice</label><subscriberId>{SIREN}</subscriberId><circuitId>otp</circuitId>"
            f"<dataFileVO>{_vo(name, pdf_bytes(text=name))}</dataFileVO>")


def _otp_upload(d: dict[str, Any]) -> str:
    name = _name()
    return (f"<siren>{SIREN}</siren><circuitId>otp</circuitId><document>{_vo(name, pdf_bytes(text=name))}</document>"
            f"<otpData>{_vo('METAS_x.xml', otp_xml(JOHN))}</otpData>")


def _bsms(d: dict[str, Any]) -> str:
    name = _name()
    return (f"<subscriberId>{SIREN}</subscriberId><circuitId>otp</circuitId>"
            f"<dataFileVO>{_vo(name, pdf_bytes(text=name))}</dataFileVO>"
            f"<metaFileVO>{_vo('m.xml', otp_xml(JOHN))}</metaFileVO>")


def _on_demand(d: dict[str, Any]) -> str:
    name = _name()
    circuit = ("<circuit><type> BUREAUTIQUE_PDF</type><steps><step><type>signature</type>"
               f"<members>{SIGNER}</members></step></steps></circuit>")
    return f"<siren>{SIREN}</siren>{circuit}<doc>{_vo(name, pdf_bytes(text=name))}</doc>"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


OPERATIONS: dict[str, Op] = {
    "upload": Op(_upload, S05, E.NO_PERMISSION),
    "download": Op(_doc_op(), E.NODE_NOT_FOUND, E.NODE_NOT_FOUND, _doc, "documentId"),
    "getFdc": Op(_doc_op(), NOT_FOUND, NOT_FOUND, _doc, "documentId"),
    "history": Op(_doc_op(), NOT_FOUND, NOT_FOUND, _doc, "documentId"),
    "getRefusalMessage": Op(_doc_op("nodeRefId"), NOT_FOUND, NOT_FOUND, _refused_doc, "nodeRefId"),
    "uploadPJ": Op(_doc_op(extra=f"<file>{_vo('annexe.pdf', pdf_bytes(text='annexe'))}</file>"), NOT_FOUND,
                   NOT_FOUND, _doc, "documentId"),
    "getProperties": Op(_doc_op(), NOT_FOUND, NOT_FOUND, _doc, "documentId"),
    "getPropertiesByName": Op(_doc_op(extra="<name>nom</name>"), NOT_FOUND, NOT_FOUND, _doc, "documentId"),
    "uploadMeta": Op(_doc_op(extra=f"<arg1>{_b64(meta_xml(TEXT001='x'))}</arg1>"), NOT_FOUND, NOT_FOUND,
                     _meta_doc, "documentId"),
    "uploadOTPInformation": Op(_doc_op(extra=f"<arg1>{_b64(otp_xml(JOHN))}</arg1>"), NOT_FOUND, NOT_FOUND, _doc,
                               "documentId"),
    "getMetas": Op(_doc_op(), NOT_FOUND, NOT_FOUND, _doc, "documentId"),
    "getSmsUrl": Op(_doc_op("nodeRefId"), NOT_FOUND, NOT_FOUND, _otp_doc, "nodeRefId"),
    "getMultiIdsSmsUrl": Op(_doc_op("nodeRefIds"), NOT_FOUND, NOT_FOUND, _otp_doc, "nodeRefIds"),
    "downloadAcknowledgement": Op(_doc_op(), NOT_FOUND, NOT_FOUND, _ack_doc, "documentId"),
    "downloadChorus": Op(_doc_op(), NOT_FOUND, NOT_FOUND, _flow("chorus"), "documentId"),
    "downloadPesRetour": Op(_doc_op(), NOT_FOUND, NOT_FOUND, _flow("pes_retour"), "documentId"),
    "listRemainingAcknowledgements": Op(_siren_op(), S05, None),
    "listRemainingChorus": Op(_siren_op(), S05, S05),
    "listRemainingPesRetour": Op(_siren_op(), S05, S05),
    "listRemainingSignedDocs": Op(_siren_op(), S05, None),
    "search": Op(_siren_op("<circuitId>otp</circuitId>"), S05, E.NO_PERMISSION),
    "searchDetails": Op(_siren_op("<circuitId>otp</circuitId>"), S05, E.NO_PERMISSION),
    "getCircuits": Op(_siren_op(), S05, None),
    "ExportUsersData": Op(_siren_op(), S05, E.AUTH_ACCESS_DENIED),
    "synchronizeUsers": Op(lambda d: f"<siren>{SIREN}</siren><users>{d['users']}</users>", S05,
                           E.AUTH_ACCESS_DENIED, _users),
    "getSMSHistory": Op(_siren_op(), S05, None),
    "otpUpload": Op(_otp_upload, S05, E.NO_PERMISSION),
    "uploadBSMS": Op(_bsms, S05, E.NO_PERMISSION),
    "uploadOnDemand": Op(_on_demand, E.UNAUTHORIZED_ACTIONS, E.UNAUTHORIZED_DEPOSIT),
    # the admin last: these change state
    "delete": Op(_doc_op(), NOT_FOUND, NOT_FOUND, _doc, "documentId"),
    "rawdelete": Op(_doc_op(), NOT_FOUND, NOT_FOUND, _doc, "documentId"),
}


def test_every_operation_has_an_entry() -> None:
    """The operations of the WSDL and of the dispatch table are exactly the matrix's (31)."""
    assert set(CONTRACT.operations) == set(load_all()), "WSDL and dispatch table differ"
    assert set(OPERATIONS) == set(CONTRACT.operations), (
        set(CONTRACT.operations) ^ set(OPERATIONS), "an operation without its line in the authorization matrix")


def _call(s: Ctx, identity: str, name: str, inner: str) -> httpx.Response:
    with s.client(None if identity == NONE else identity) as c:
        return post(c, envelope(name, inner))


def _fault_of(response: httpx.Response) -> tuple[int, str, str]:
    _code, string, detail = fault(response)
    details = detail.findtext(f"{{{NS}}}BusinessException/details") or ""
    return response.status_code, string, details.split(" ", 1)[0]


def _assert_fault(response: httpx.Response, status: int, entry: ErrorDef, who: str) -> None:
    got_status, string, code = _fault_of(response)
    assert (got_status, string) == (status, faults.fault_string(ParafeError(entry))), (who, response.text[:800])
    if code:  # uploadPJ's IOException carries the message only
        assert code == str(entry.code), (who, response.text[:800])


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_authorization_matrix(soap: Ctx, name: str) -> None:
    op = OPERATIONS[name]
    data = op.prepare(soap) if op.prepare else {}
    for identity in IDENTITIES:
        response = _call(soap, identity, name, op.inner(data))
        if identity == NONE:
            _assert_fault(response, 401, E.CERT_MISSING, identity)
            continue
        expected = {OTHER: op.other, VISA: op.norole}.get(identity)
        if expected is None:
            assert response.status_code == 200, (identity, response.text[:800])
            assert body_of(response).tag == f"{{{NS}}}{name}Response", (identity, response.text[:800])
            continue
        _assert_fault(response, 500, expected, identity)
        if op.on_document is not None:  # the foreign id answers exactly like an id that does not exist
            unknown = _call(soap, identity, name, op.inner({**data, "doc": UNKNOWN_ID}))
            assert _fault_of(unknown) == _fault_of(response), (identity, unknown.text[:800])


def test_filtered_lists_leave_foreign_documents_out(soap: Ctx) -> None:
    """The operations a user without a role may call answer without the documents of circuits it has no role on."""
    data = _ack_doc(soap)
    for identity, visible in ((VISA, False), (ADMIN, True)):
        response = _call(soap, identity, "listRemainingAcknowledgements", f"<siren>{SIREN}</siren>")
        ids = [e.text for e in body_of(response)]
        assert (data["doc"] in ids) is visible, (identity, ids)
