"""Interop 1/3: a zeep client generated from the served WSDL calls every one of the 31 operations against the
real server over TLS with client certificates, on SQLite and PostgreSQL (issue 4, "Show" 1).

Documents are put in the states an operation needs (refused, signed, waiting for metadata, acknowledged…)
directly in the database or with the returns service, since the workflow engine is not what is tested here.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zeep
from zeep import xsd
from zeep.plugins import Plugin

from parafe.connectors.soap.contract import CONTRACT, NS, SOAP_ENV
from parafe.context import AppContext
from parafe.db.models import Circuit, Document, HistoryEntry, Subscriber, utcnow
from parafe.domain.errors import E
from parafe.domain.states import State
from parafe.services.helios import returns
from parafe.services.otp import codes as otp
from tests.api.soap.soaputil import ADMIN, AGENT, NO_WORKER, SIGNER, SIREN, zeep_client
from tests.conftest import TESTDATA, Home, LiveServer, start_server, stop_server
from tests.fixtures.files import pdf_bytes

PES = (TESTDATA / "pes" / "samples" / "valid_unsigned_PES_ex.xml").read_bytes()
ACQUIT = (TESTDATA / "pes" / "samples" / "acquit_ok.xml").read_bytes()
PES_RETOUR = (TESTDATA / "pes" / "samples" / "pes_retour_depense.xml").read_bytes()
CHORUS = (TESTDATA / "chorus" / "samples" / "facture-pivot.xml").read_bytes()
OTP_INFO = (b'<?xml version="1.0" encoding="UTF-8"?><meta-data-list>'
            b'<meta-data name="OTP_firstname_0" value="Jean"/><meta-data name="OTP_lastname_0" value="Dupont"/>'
            b'<meta-data name="OTP_phonenumber_0" value="0601020304"/>'
            b'<meta-data name="OTP_email_0" value="jean.dupont@example.org"/></meta-data-list>')


@pytest.fixture
def server(home: Home) -> Iterator[LiveServer]:
    live = start_server(home, NO_WORKER)
    try:
        yield live
    finally:
        stop_server(live)


class SchemaCheck(Plugin):
    """Validates every answer's Body child against the WSDL's schema (names, order, unqualified children)."""

    def __init__(self) -> None:
        self.checked = 0

    def ingress(self, envelope: Any, http_headers: Any, operation: Any) -> tuple[Any, Any]:
        body = envelope.find(f"{{{SOAP_ENV}}}Body")
        child = body[0]
        if child.tag == f"{{{SOAP_ENV}}}Fault":
            assert [c.tag for c in child] == ["faultcode", "faultstring", "detail"]
            CONTRACT.schema.assertValid(child.find("detail")[0])
        else:
            assert child.tag == f"{{{NS}}}{operation.name}Response"
            CONTRACT.schema.assertValid(child)
        self.checked += 1
        return envelope, http_headers


class Recorder:
    """Calls operations through zeep and remembers which ones were called."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.called: set[str] = set()
        self.schema = SchemaCheck()
        client.plugins.append(self.schema)

    def __call__(self, operation: str, **kwargs: Any) -> Any:
        self.called.add(operation)
        return getattr(self.client.service, operation)(**kwargs)

    def fault(self, operation: str, **kwargs: Any) -> zeep.exceptions.Fault:
        with pytest.raises(zeep.exceptions.Fault) as info:
            self(operation, **kwargs)
        return info.value


def _set_state(ctx: AppContext, doc_id: int, state: State, comment: str | None = None) -> None:
    with ctx.db.write() as session:
        document = session.get(Document, int(doc_id))
        assert document is not None
        document.state = state.value
        session.add(HistoryEntry(document_id=document.id, state=state.value, user_fullname="Sophie Signataire",
                                 comment=comment, created_at=utcnow()))


def _circuit(ctx: AppContext, key: str, change: Callable[[Circuit], None]) -> None:
    with ctx.db.write() as session:
        subscriber = session.query(Subscriber).filter_by(siren=SIREN).one()
        change(session.query(Circuit).filter_by(subscriber_id=subscriber.id, key=key).one())


def _file(data: bytes, name: str) -> dict[str, Any]:
    return {"dataHandler": data, "filename": name}


def test_every_operation_with_zeep(server: LiveServer, ctx: AppContext) -> None:
    agent = Recorder(zeep_client(server, AGENT))
    admin = Recorder(zeep_client(server, ADMIN))
    pdf = pdf_bytes(text="zeep")

    # upload / history / download / getFdc / properties
    doc = agent("upload", label="zeep", comment="par zeep", subscriberId=SIREN, circuitId="bureautique",
                dataFileVO=_file(pdf, "zeep.pdf"), email_destinataire="dest@example.org")
    assert int(doc) >= 100_000_000
    history = agent("history", documentId=doc)
    assert [h.stateName for h in history] == ["Préparé"]
    assert history[0].userFullname == "Alice Agent"
    assert history[0].date is not None
    content = agent("download", documentId=doc)
    assert content.documentId == doc
    assert content.content == pdf
    zipped = agent("download", documentId=doc, fdc="true", acquit="false").content
    names = zipfile.ZipFile(io.BytesIO(zipped)).namelist()
    assert "zeep.pdf" in names
    assert any(n.startswith("FDC_") for n in names)
    assert agent("getFdc", documentId=doc).content.startswith(b"%PDF")
    props = {(p.name, p.propertyRank): p.value for p in agent("getProperties", documentId=int(doc))}
    assert props[("filename", 0)] == "zeep.pdf"
    assert props[("state", 0)] == "Préparé"
    assert props[("circuitId", 0)] == "bureautique"
    assert props[("stateCode", 0)] == "Prepared"
    assert agent("getPropertiesByName", documentId=int(doc), name="label") == ["zeep"]

    # circuits, search
    circuits = {c.circuitId: c for c in agent("getCircuits", siren=SIREN)}
    assert {"bureautique", "pes", "otp"} <= set(circuits)
    assert [s.username for s in circuits["bureautique"].signers] == [SIGNER]
    assert circuits["bureautique"].circuitType == "BUREAUTIQUE_PDF"
    assert doc in agent("search", siren=SIREN, circuitId="bureautique", label="zeep")
    details = agent("searchDetails", siren=SIREN, filename="zeep.pdf")
    assert [(d.docId, d.docName, d.docLabel) for d in details] == [(int(doc), "zeep.pdf", "zeep")]

    # signed documents, refusal message
    signed = agent("upload", label="zeep", subscriberId=SIREN, circuitId="bureautique",
                   dataFileVO=_file(pdf_bytes(text="signé"), "signe.pdf"))
    assert agent("listRemainingSignedDocs", siren=SIREN, circuitId="bureautique") == []
    _set_state(ctx, int(signed), State.SIGNED)
    assert agent("listRemainingSignedDocs", siren=SIREN, circuitId="bureautique") == [signed]
    assert agent.fault("getRefusalMessage", nodeRefId=doc).message == E.NOT_REFUSED.message
    refused = agent("upload", label="zeep", subscriberId=SIREN, circuitId="bureautique",
                    dataFileVO=_file(pdf_bytes(text="refusé"), "refuse.pdf"))
    _set_state(ctx, int(refused), State.REFUSED, comment="Montant erroné")
    assert agent("getRefusalMessage", nodeRefId=refused) == "Montant erroné"

    # metadata
    _circuit(ctx, "serveur", lambda c: setattr(c, "metadata_model", [{"name": "TEXT001", "kind": "text"}]))
    meta_doc = agent("upload", subscriberId=SIREN, circuitId="serveur", dataFileVO=_file(pdf, "meta.pdf"))
    _set_state(ctx, int(meta_doc), State.READY_FOR_METADATA)
    metas = b'<meta-data-list><meta-data name="TEXT001" value="Dupont"/></meta-data-list>'
    assert agent("uploadMeta", documentId=meta_doc, arg1=metas) == meta_doc
    assert [(m.metaDataName, m.metaDataValue) for m in agent("getMetas", documentId=meta_doc)] == [
        ("TEXT001", "Dupont")]
    by_meta = {"parameters": {"entry": [{"key": "TEXT001", "value": "Dupont"}]}}
    assert agent("search", siren=SIREN, meta=by_meta) == [meta_doc]
    assert agent("searchDetails", siren=SIREN, state="Prepared", meta=by_meta) == []

    # OTP
    otp_doc = agent("upload", subscriberId=SIREN, circuitId="otp", dataFileVO=_file(pdf, "otp.pdf"))
    assert agent("uploadOTPInformation", documentId=otp_doc, arg1=OTP_INFO) == otp_doc
    url = agent("getSmsUrl", nodeRefId=otp_doc, url="")
    assert "/boucle-sms/documentView?id=" in url
    uploaded = agent("otpUpload", label="", comment="", siren=SIREN, circuitId="otp", redirectionURL="",
                     document=_file(pdf_bytes(text="otp 2"), "otp2.pdf"),
                     otpData=_file(OTP_INFO, "METAS_otp2.pdf.xml"))
    assert len(uploaded) == 2
    assert int(uploaded[0]) > int(otp_doc)
    assert "/boucle-sms/" in uploaded[1]
    both = agent("getMultiIdsSmsUrl", nodeRefIds=[otp_doc, uploaded[0]], url="https://metier.example.org/")
    assert "/boucle-sms/documentView?id=" in both
    bsms_meta = (b'<meta-data-list><meta-data name="TEXT001" value="Jean Dupont"/>'
                 b'<meta-data name="TEXT002" value="jean.dupont@example.org"/>'
                 b'<meta-data name="TEXT003" value="0601020304"/></meta-data-list>')
    bsms = agent("uploadBSMS", label="", comment="", subscriberId=SIREN, circuitId="otp", referrer="",
                 dataFileVO=_file(pdf_bytes(text="bsms"), "bsms.pdf"), metaFileVO=_file(bsms_meta, "meta.xml"))
    assert len(bsms) == 2
    assert "/boucle-sms/" in bsms[1]
    assert agent("getSMSHistory", siren=SIREN, cinematiqueId="otp", date="") == []
    with ctx.db.write() as session:  # the document reaches its OTP step; the OTP page sends the code by SMS
        session.get(Document, int(otp_doc)).current_step = 0  # type: ignore[union-attr]
    otp.send_code(ctx, [int(otp_doc)])
    month = utcnow().strftime("%Y-%m")
    (sms,) = agent("getSMSHistory", siren=SIREN, cinematiqueId="otp", date=month)
    assert sms.receiver.endswith("601020304")
    assert sms.ptt == "pending"
    assert sms.creationDatetime is not None
    assert agent("getSMSHistory", siren=SIREN, cinematiqueId="bureautique", date=month) == []
    assert agent("getSMSHistory", siren=SIREN, cinematiqueId="otp", date="2015-00") == []
    assert agent.fault("getSMSHistory", siren=SIREN, date="2014-13").message.startswith("Requête invalide")

    # returns: Helios acknowledgement, PES_Retour, Chorus
    pes = agent("upload", subscriberId=SIREN, circuitId="pes", dataFileVO=_file(PES, "pes.xml"))
    assert agent("listRemainingAcknowledgements", siren=SIREN) == []
    returns.add_return(ctx, kind="ack", data=ACQUIT, name="ACQUIT_pes.xml", document_id=int(pes))
    assert agent("listRemainingAcknowledgements", siren=SIREN) == [pes]
    ack = agent("downloadAcknowledgement", documentId=pes)
    assert ack.documentId == pes
    assert ack.content == ACQUIT
    assert agent("listRemainingAcknowledgements", siren=SIREN) == []
    retour_id = str(returns.add_return(ctx, kind="pes_retour", data=PES_RETOUR, name="retour.xml", siren=SIREN))
    assert agent("listRemainingPesRetour", siren=SIREN) == [retour_id]
    assert agent("downloadPesRetour", documentId=retour_id).content == PES_RETOUR
    assert agent("listRemainingPesRetour", siren=SIREN) == []
    chorus_id = str(returns.add_return(ctx, kind="chorus", data=CHORUS, name="chorus.xml", siren=SIREN))
    assert agent("listRemainingChorus", siren=SIREN) == [chorus_id]
    assert agent("downloadChorus", documentId=chorus_id).content == CHORUS

    # users
    exported = json.loads(agent("ExportUsersData", siren=SIREN))
    emails = {u["email"] for u in exported["users"]}
    assert {AGENT, ADMIN, SIGNER} <= emails
    same = [{"authenticationType": u["authenticationType"], "email": u["email"], "firstName": u["prenom"],
             "lastName": u["nom"], "groups": u["groups"]} for u in exported["users"]]
    assert json.loads(admin("synchronizeUsers", siren=SIREN, users=json.dumps(same))) == {}
    assert agent.fault("synchronizeUsers", siren=SIREN, users="[]").message == E.AUTH_ACCESS_DENIED.message

    # on-demand circuit (the circuit element is an xs:anyType: zeep sends it with xsi:type)
    circuit_type = agent.client.get_type(f"{{{NS}}}circuit")
    circuit = xsd.AnyObject(circuit_type, circuit_type(
        type="BUREAUTIQUE_PDF", steps={"step": [{"members": SIGNER, "type": "signature"}]}))
    on_demand = agent("uploadOnDemand", siren=SIREN, circuit=circuit, doc=_file(pdf_bytes(text="vol"), "vol.pdf"),
                      email_destinataire="dest@example.org")
    assert [h.stateName for h in agent("history", documentId=on_demand)] == ["Préparé"]

    # uploadPJ: annexes added after the deposit, numbered from 0; bad extension refused
    assert agent("uploadPJ", documentId=doc, file=_file(b"%PDF-1.4 annexe", "annexe.pdf")) == "0"
    assert agent("uploadPJ", documentId=doc, file=_file(b"notes", "notes.txt")) == "1"
    assert agent.fault("uploadPJ", documentId=doc, file=_file(b"x", "virus.foo")).message == (
        E.EXTENSION_NOT_ALLOWED.message)
    assert agent.fault("uploadPJ", documentId="100999999", file=_file(b"x", "a.pdf")).message == (
        E.DOCUMENT_NOT_FOUND.message)

    # delete, rawdelete
    assert agent("delete", documentId=doc) is None
    assert agent.fault("history", documentId=doc).message == E.DOCUMENT_NOT_FOUND.message
    assert agent("rawdelete", documentId=refused) is None
    assert agent.fault("delete", documentId=signed).message == E.DELETE_NOT_ALLOWED.message

    assert agent.called | admin.called == set(CONTRACT.operations)
    assert agent.schema.checked + admin.schema.checked >= 31
    assert len(CONTRACT.operations) == 31
