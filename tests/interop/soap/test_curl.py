"""Interop 3/3: raw envelopes posted with curl, the way Pastell and Maarch Courrier do (issue 4, "Show" 3;
research note real-clients.md §2 and §4), against the real server over TLS with client certificates.

- Pastell (``NotBuggySoapClient``, ``use_curl``): the WSDL's ``soap:address`` is the target, the envelope is
  PHP SoapClient's (``SOAP-ENV``/``ns1`` prefixes), ``Content-Type: text/xml; charset=utf-8`` and **no**
  SOAPAction; the answer is cut at ``<?xml`` / ``<soap:`` and at a ``--uuid:`` MIME boundary before parsing;
  a NomFic duplicate is recognised by the regex ``un fichier PES avec le même nomfic a deja ete envoye``.
- Maarch: hand-written ``soapenv``/``sei`` envelopes POSTed to the ``…/Documents?wsdl`` URL with
  ``content-type:text/xml;charset="utf-8"`` and ``accept:text/xml``; the plain body is read with simplexml
  (``maarch_parse.php``), faults from ``Body->Fault->faultstring``; uploads are zips (main document + annexes).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from pathlib import Path

from lxml import etree

from parafe.connectors.soap.contract import NS, SOAP_ENV
from parafe.domain.errors import E
from tests.api.soap.soaputil import AGENT, ENDPOINT, SIREN, require_curl, require_php
from tests.conftest import TESTDATA, LiveServer
from tests.fixtures.files import pdf_bytes, zip_bytes

PES = (TESTDATA / "pes" / "samples" / "valid_unsigned_PES_ex.xml").read_bytes()
PASTELL_DOUBLON = re.compile("un fichier PES avec le même nomfic a deja ete envoye")
MAARCH_PARSE = Path(__file__).parent / "php" / "maarch_parse.php"


def _curl(server: LiveServer, url: str, body: Path | None, headers: list[str]) -> tuple[int, bytes]:
    curl = require_curl()
    cert, key = server.home.demo(AGENT)
    args = [curl, "-sS", "--insecure", "--cert", cert, "--key", key, "-o", "-", "-w", "\n%{http_code}"]
    for header in headers:
        args += ["-H", header]
    if body is not None:
        args += ["--data-binary", f"@{body}"]
    run = subprocess.run([*args, url], capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr
    content, _, status = run.stdout.rpartition(b"\n")
    return int(status), content


# ---- Pastell ---------------------------------------------------------------------------------------------------

def _php_envelope(operation: str, inner: str) -> bytes:
    """The envelope PHP's SoapClient writes (research note §1)."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENV}" '
            f'xmlns:ns1="{NS}"><SOAP-ENV:Body><ns1:{operation}>{inner}</ns1:{operation}></SOAP-ENV:Body>'
            "</SOAP-ENV:Envelope>\n").encode()


def _pastell_cut(content: bytes) -> bytes:
    """Pastell's NotBuggySoapClient: keep from ``<?xml`` (or ``<soap:``) up to a ``--uuid:`` boundary."""
    for marker in (b"<?xml", b"<soap:"):
        at = content.find(marker)
        if at != -1:
            content = content[at:]
            break
    return content.split(b"--uuid:")[0]


def _pastell_call(server: LiveServer, address: str, tmp: Path, operation: str, inner: str) -> etree._Element:
    body = tmp / f"{operation}.xml"
    body.write_bytes(_php_envelope(operation, inner))
    status, content = _curl(server, address, body, ["Content-Type: text/xml; charset=utf-8"])
    root = etree.fromstring(_pastell_cut(content))
    node = root.find(f"{{{SOAP_ENV}}}Body")[0]
    if status != 200:
        assert node.tag == f"{{{SOAP_ENV}}}Fault"
    return node


def test_pastell_curl(soap_server: LiveServer, tmp_path: Path) -> None:
    status, wsdl = _curl(soap_server, f"{soap_server.url}{ENDPOINT}?wsdl", None, [])
    assert status == 200
    address = re.search(rb'<soap:address location="([^"]+)"', wsdl).group(1).decode()  # type: ignore[union-attr]
    assert address == f"{soap_server.url}{ENDPOINT}"

    # test connection, then getCircuits
    acks = _pastell_call(soap_server, address, tmp_path, "listRemainingAcknowledgements", f"<siren>{SIREN}</siren>")
    assert acks.tag == f"{{{NS}}}listRemainingAcknowledgementsResponse"
    assert len(acks) == 0
    circuits = _pastell_call(soap_server, address, tmp_path, "getCircuits", f"<siren>{SIREN}</siren>")
    assert "pes" in [r.findtext("circuitId") for r in circuits.findall("return")]

    # upload as Pastell: subscriberId, circuitId, label '', comment '', dataFileVO{filename…} (PHP reorders)
    data = pdf_bytes(text="pastell")
    inner = (f"<label></label><comment></comment><subscriberId>{SIREN}</subscriberId><circuitId>bureautique"
             f"</circuitId><dataFileVO><dataHandler>{base64.b64encode(data).decode()}</dataHandler>"
             "<filename>pastell.pdf</filename></dataFileVO>")
    upload = _pastell_call(soap_server, address, tmp_path, "upload", inner)
    doc_id = upload.findtext("return")
    assert doc_id
    assert int(doc_id) >= 100_000_000
    history = _pastell_call(soap_server, address, tmp_path, "history", f"<documentId>{doc_id}</documentId>")
    last = history.findall("return")[-1]
    assert last.findtext("stateName") == "Préparé"
    assert last.findtext("date")
    download = _pastell_call(soap_server, address, tmp_path, "download", f"<documentId>{doc_id}</documentId>")
    assert base64.b64decode(download.findtext("return/content") or "") == data
    fdc = _pastell_call(soap_server, address, tmp_path, "getFdc", f"<documentId>{doc_id}</documentId>")
    assert base64.b64decode(fdc.findtext("return/content") or "").startswith(b"%PDF")

    # Helios: a NomFic sent twice is a « Doublon » for Pastell
    pes_inner = (f"<label></label><comment></comment><subscriberId>{SIREN}</subscriberId><circuitId>pes"
                 f"</circuitId><dataFileVO><dataHandler>{base64.b64encode(PES).decode()}</dataHandler>"
                 "<filename>{name}</filename></dataFileVO>")
    first = _pastell_call(soap_server, address, tmp_path, "upload", pes_inner.replace("{name}", "pes-a.xml"))
    assert first.findtext("return")
    dup = _pastell_call(soap_server, address, tmp_path, "upload", pes_inner.replace("{name}", "pes-b.xml"))
    message = dup.findtext("faultstring") or ""
    assert PASTELL_DOUBLON.search(message), message
    assert message.startswith(E.PES_DUPLICATE_NOMFIC.message)

    deleted = _pastell_call(soap_server, address, tmp_path, "delete", f"<documentId>{doc_id}</documentId>")
    assert deleted.tag == f"{{{NS}}}deleteResponse"
    assert len(deleted) == 0
    gone = _pastell_call(soap_server, address, tmp_path, "history", f"<documentId>{doc_id}</documentId>")
    assert gone.findtext("faultstring") == E.DOCUMENT_NOT_FOUND.message


# ---- Maarch ----------------------------------------------------------------------------------------------------

def _maarch_envelope(operation: str, inner: str) -> bytes:
    return (f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:sei="{NS}"><soapenv:Header/><soapenv:Body>'
            f"<sei:{operation}>{inner}</sei:{operation}></soapenv:Body></soapenv:Envelope>").encode()


def _maarch_call(server: LiveServer, tmp: Path, operation: str, inner: str) -> dict[str, object]:
    php = require_php()
    body = tmp / f"maarch-{operation}.xml"
    body.write_bytes(_maarch_envelope(operation, inner))
    _, content = _curl(server, f"{server.url}{ENDPOINT}?wsdl", body,
                       ['content-type:text/xml;charset="utf-8"', "accept:text/xml"])
    parsed = subprocess.run([php, str(MAARCH_PARSE), operation], input=content, capture_output=True, timeout=60)
    assert parsed.returncode == 0, parsed.stderr
    result: dict[str, object] = json.loads(parsed.stdout)
    return result


def test_maarch_curl(soap_server: LiveServer, tmp_path: Path) -> None:
    main = pdf_bytes(text="courrier")
    bundle = zip_bytes({"courrier.pdf": main, "annexe.pdf": pdf_bytes(text="annexe")})
    inner = (f"<label>Courrier</label><comment>Envoyé par Maarch</comment><subscriberId>{SIREN}</subscriberId>"
             f"<circuitId>bureautique</circuitId><dataFileVO><dataHandler>{base64.b64encode(bundle).decode()}"
             "</dataHandler><filename>courrier.pdf.zip</filename></dataFileVO>")
    upload = _maarch_call(soap_server, tmp_path, "upload", inner)
    doc_id = str(upload["return"])
    assert int(doc_id) >= 100_000_000, upload
    history = _maarch_call(soap_server, tmp_path, "history", f"<documentId>{doc_id}</documentId>")
    assert history["states"] == ["Préparé"]
    download = _maarch_call(soap_server, tmp_path, "download", f"<documentId>{doc_id}</documentId>")
    assert download["documentId"] == doc_id  # Maarch checks the id it gets back
    assert download["content_sha256"] == hashlib.sha256(main).hexdigest()
    refusal = _maarch_call(soap_server, tmp_path, "getRefusalMessage", f"<nodeRefId>{doc_id}</nodeRefId>")
    assert refusal["fault"] == E.NOT_REFUSED.message
    unknown = _maarch_call(soap_server, tmp_path, "history", "<documentId>100999999</documentId>")
    assert unknown["fault"] == E.DOCUMENT_NOT_FOUND.message
