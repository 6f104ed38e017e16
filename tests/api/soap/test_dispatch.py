"""Dispatch and wire shape of the SOAP endpoint with raw envelopes (issue 4, "Build"): SOAPAction absent, empty,
quoted or odd; POST on ``…/Documents`` and ``…/Documents?wsdl``; qualified wrapper and unqualified children;
inline base64; MTOM requests; SOAP 1.1 faults with the catalogue's French messages; schema validation."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest
from lxml import etree

from parafe.connectors.soap.contract import NS, SOAP_ENV
from parafe.domain.errors import E
from tests.api.soap.soaputil import (
    AGENT,
    ENDPOINT,
    OTHER,
    SIREN,
    body_of,
    envelope,
    fault,
    post,
    result,
    returns,
)
from tests.conftest import LiveServer
from tests.fixtures.files import pdf_bytes


def _upload_inner(data: bytes, name: str, label: str = "dispatch") -> str:
    return (f"<label>{label}</label><comment/><subscriberId>{SIREN}</subscriberId><circuitId>bureautique"
            f"</circuitId><dataFileVO><dataHandler>{base64.b64encode(data).decode()}</dataHandler>"
            f"<filename>{name}</filename></dataFileVO>")


def _upload(c: httpx.Client, name: str, *, path: str = ENDPOINT, soapaction: str | None = None) -> str:
    r = post(c, envelope("upload", _upload_inner(pdf_bytes(text=name), name)), path=path, soapaction=soapaction)
    (ret,) = returns(r, "upload")
    return ret.text or ""


@pytest.mark.parametrize("soapaction", [None, "", '""', '"upload"', "urn:anything"])
def test_soapaction_is_ignored(soap_server: LiveServer, soapaction: str | None) -> None:
    with soap_server.client(AGENT) as c:
        doc_id = _upload(c, f"action-{uuid.uuid4().hex[:8]}.pdf", soapaction=soapaction)
    assert int(doc_id) >= 100_000_000


def test_post_on_the_wsdl_url_and_plain_xml_answer(soap_server: LiveServer) -> None:
    with soap_server.client(AGENT) as c:
        doc_id = _upload(c, "maarch.pdf", path=f"{ENDPOINT}?wsdl")
        r = post(c, envelope("history", f"<documentId>{doc_id}</documentId>"), path=f"{ENDPOINT}?wsdl",
                 content_type='text/xml;charset="utf-8"')
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/xml; charset=utf-8"
    assert r.content.startswith(b"<?xml")
    assert int(r.headers["content-length"]) == len(r.content)
    wrapper = result(r, "history")
    assert wrapper.prefix == "ns2"  # as CXF writes it
    (entry,) = wrapper
    assert [child.tag for child in entry] == ["userFullname", "date", "stateName"]  # WSDL order, unqualified
    assert entry.findtext("stateName") == "Préparé"


def test_php_style_envelope_and_inline_base64_download(soap_server: LiveServer) -> None:
    data = pdf_bytes(text="php")
    php_style = (f'<?xml version="1.0" encoding="UTF-8"?>\n<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENV}" '
                 f'xmlns:ns1="{NS}"><SOAP-ENV:Body><ns1:upload>{_upload_inner(data, "php.pdf")}</ns1:upload>'
                 "</SOAP-ENV:Body></SOAP-ENV:Envelope>").encode()
    with soap_server.client(AGENT) as c:
        (ret,) = returns(post(c, php_style, soapaction='""'), "upload")
        r = post(c, envelope("download", f"<documentId>{ret.text}</documentId>"))
    (vo,) = returns(r, "download")
    assert [child.tag for child in vo] == ["documentId", "content"]
    assert vo.findtext("documentId") == ret.text
    assert base64.b64decode(vo.findtext("content") or "") == data
    assert b"multipart" not in r.headers["content-type"].encode()


def test_empty_list_is_an_empty_wrapper(soap_server: LiveServer) -> None:
    with soap_server.client(AGENT) as c:
        r = post(c, envelope("listRemainingAcknowledgements", f"<siren>{SIREN}</siren>"))
    assert returns(r, "listRemainingAcknowledgements") == []


def test_business_fault_shape(soap_server: LiveServer) -> None:
    with soap_server.client(AGENT) as c:
        r = post(c, envelope("history", "<documentId>100999999</documentId>"))
    assert r.status_code == 500  # SOAP 1.1 / WS-I: a fault answers 500, as CXF does
    code, string, detail = fault(r)
    assert code == "soap:Server"
    assert string == E.DOCUMENT_NOT_FOUND.message == "Le document n'existe pas"
    (exception,) = detail
    assert exception.tag == f"{{{NS}}}BusinessException"
    assert [child.tag for child in exception] == ["details", "message"]
    assert exception.findtext("message") == string
    assert exception.findtext("details", "").startswith(str(E.DOCUMENT_NOT_FOUND.code))


def test_foreign_document_answers_like_unknown(soap_server: LiveServer) -> None:
    with soap_server.client(AGENT) as c:
        doc_id = _upload(c, "foreign.pdf")
    with soap_server.client(OTHER) as other:
        foreign = post(other, envelope("download", f"<documentId>{doc_id}</documentId>"))
        unknown = post(other, envelope("download", "<documentId>100999999</documentId>"))
        upload = post(other, envelope("upload", _upload_inner(pdf_bytes(), "x.pdf")))
    assert fault(foreign)[1] == fault(unknown)[1] == E.NODE_NOT_FOUND.message
    assert fault(upload)[1] == E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN.message


def test_upload_pj_faults_with_io_exception(soap_server: LiveServer) -> None:
    with soap_server.client(AGENT) as c:
        r = post(c, envelope("uploadPJ", "<documentId>100999999</documentId>"))
    _, string, detail = fault(r)
    assert string == E.DOCUMENT_NOT_FOUND.message
    assert detail[0].tag == f"{{{NS}}}IOException"
    assert [child.tag for child in detail[0]] == ["message"]


def test_without_certificate_401_fault(soap_server: LiveServer) -> None:
    with soap_server.client() as c:
        r = post(c, envelope("listRemainingAcknowledgements", f"<siren>{SIREN}</siren>"))
        wsdl = c.get(f"{ENDPOINT}?wsdl")
    assert r.status_code == 401
    assert fault(r)[1] == E.CERT_MISSING.message
    assert wsdl.status_code == 401
    for which, error in (("expired", E.CERT_EXPIRED), ("revoked", E.CERT_REVOKED),
                         ("unknown-ca", E.CERT_UNKNOWN_CA)):
        with soap_server.client(cert=soap_server.home.bad(which)) as c:
            assert fault(post(c, envelope("getCircuits", f"<siren>{SIREN}</siren>")))[1] == error.message


def test_schema_violations_are_client_faults(soap_server: LiveServer) -> None:
    bad = {
        "order": envelope("upload", "<comment/><label>x</label>"),
        "qualified child": envelope("history", "<sei:documentId>1</sei:documentId>"),
        "unknown child": envelope("history", "<documentId>1</documentId><receiver>x</receiver>"),
        "not a long": envelope("getProperties", "<documentId>12a</documentId>"),
        "required missing": envelope("getProperties", ""),
        "bad base64": envelope("uploadMeta", "<documentId>1</documentId><arg1>@@@@</arg1>"),
    }
    with soap_server.client(AGENT) as c:
        for case, body in bad.items():
            r = post(c, body)
            assert r.status_code == 400, case
            code, string, _ = fault(r)
            assert code == "soap:Client", case
            assert string.startswith("Requête invalide : "), (case, string)


def test_get_refusal_message_accepts_document_id(soap_server: LiveServer) -> None:
    with soap_server.client(AGENT) as c:
        doc_id = _upload(c, "refusal.pdf")
        by_node = post(c, envelope("getRefusalMessage", f"<nodeRefId>{doc_id}</nodeRefId>"))
        by_document = post(c, envelope("getRefusalMessage", f"<documentId>{doc_id}</documentId>"))
        empty = post(c, envelope("getRefusalMessage"))  # what Pastell's SoapClient really sends
    assert fault(by_node)[1] == fault(by_document)[1] == E.NOT_REFUSED.message == (
        "Le document n'a pas été rejeté ou refusé")
    assert fault(empty)[1] == E.DOCUMENT_NOT_FOUND.message


def test_mtom_request(soap_server: LiveServer) -> None:
    """A JAX-WS-style MTOM request: the envelope in the root part, the PDF as a binary attachment."""
    data = pdf_bytes(text="mtom")
    boundary = "uuid:" + uuid.uuid4().hex
    cid = "1.attachment@cxf.apache.org"
    root = envelope("upload", f"<label>mtom</label><subscriberId>{SIREN}</subscriberId><circuitId>bureautique"
                              f"</circuitId><dataFileVO><dataHandler><xop:Include "
                              f'xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:{cid}"/>'
                              f"</dataHandler><filename>mtom.pdf</filename></dataFileVO>")
    body = (f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"text/xml\"\r\n"
            f"Content-Transfer-Encoding: binary\r\nContent-ID: <root.message@cxf.apache.org>\r\n\r\n").encode()
    body += root + (f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                    f"Content-Transfer-Encoding: binary\r\nContent-ID: <{cid}>\r\n\r\n").encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    content_type = (f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
                    f'start="<root.message@cxf.apache.org>"; start-info="text/xml"')
    with soap_server.client(AGENT) as c:
        r = post(c, body, content_type=content_type, soapaction='""')
        (ret,) = returns(r, "upload")
        (vo,) = returns(post(c, envelope("download", f"<documentId>{ret.text}</documentId>")), "download")
    assert base64.b64decode(vo.findtext("content") or "") == data
    assert not r.headers["content-type"].startswith("multipart")  # answers are never MTOM


def test_streamed_download_has_exact_length(soap_server: LiveServer) -> None:
    data = pdf_bytes(text="gros", pad_to=3 * 1024 * 1024 + 1)
    with soap_server.client(AGENT) as c:
        doc_id = _upload(c, "gros.pdf")
        r = post(c, envelope("upload", _upload_inner(data, "gros3.pdf")))
        (ret,) = returns(r, "upload")
        big = post(c, envelope("download", f"<documentId>{ret.text}</documentId>"))
    assert doc_id
    assert int(big.headers["content-length"]) == len(big.content)
    etree.fromstring(big.content)
    (vo,) = list(body_of(big))
    assert base64.b64decode(vo.findtext("content") or "") == data


def test_upload_on_demand_with_the_documents_example_circuit(soap_server: LiveServer) -> None:
    """The v3.4 example (§2.5.23): an unqualified ``<circuit>``, ``<type>`` before ``<members>``, a leading
    space in the circuit type; the WSDL's qualified ``tns:circuit`` works as well."""
    doc = base64.b64encode(pdf_bytes(text="vol")).decode()
    circuit = ("<circuit><type> BUREAUTIQUE_PDF</type><steps><step><type>signature</type>"
               "<members>signataire@demo.parafe.test</members></step></steps></circuit>")
    with soap_server.client(AGENT) as c:
        for name, element in (("vol-doc.pdf", circuit),
                              ("vol-wsdl.pdf", circuit.replace("<circuit>", "<sei:circuit>")
                               .replace("</circuit>", "</sei:circuit>"))):
            inner = (f"<siren>{SIREN}</siren>{element}<doc><dataHandler>{doc}</dataHandler>"
                     f"<filename>{name}</filename></doc>")
            (ret,) = returns(post(c, envelope("uploadOnDemand", inner)), "uploadOnDemand")
            assert int(ret.text or "0") >= 100_000_000
        bad = post(c, envelope("uploadOnDemand", f"<siren>{SIREN}</siren>" + circuit.replace(
            "signature</type>", "paraphe</type>") + f"<doc><dataHandler>{doc}</dataHandler>"
            "<filename>vol-bad.pdf</filename></doc>"))
    assert fault(bad)[1] == E.INVALID_STEP_TYPE.message


def test_sms_history_accepts_the_documented_status_and_limit(soap_server: LiveServer) -> None:
    """v3.4 §2.5.20 documents `status` and `limit` (and `circuitId`) that the live WSDL lacks: accepted (D0)."""
    inner = (f"<siren>{SIREN}</siren><circuitId>otp</circuitId><date>2024-00</date><status>not_done</status>"
             "<limit>0</limit>")
    with soap_server.client(AGENT) as c:
        r = post(c, envelope("getSMSHistory", inner))
        assert r.status_code == 200, r.text
        bad = post(c, envelope("getSMSHistory", f"<siren>{SIREN}</siren><limit>beaucoup</limit>"))
    assert "limit" in fault(bad)[1]
