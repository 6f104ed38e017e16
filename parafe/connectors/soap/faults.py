"""SOAP 1.1 faults carrying the French messages of the error catalogue (DECISIONS D2).

``faultcode`` and ``faultstring`` are unqualified (Maarch reads ``Body->Fault->faultstring``); ``faultstring``
is the catalogue message, byte for byte; ``detail`` carries the WSDL's fault element of the operation
(``ns1:BusinessException{details, message}``, or ``ns1:IOException{message}`` for ``uploadPJ``), ``message``
repeating the French text and ``details`` giving the catalogue code and the English developer message.

Fault codes and HTTP statuses:
- ``soap:Client``, HTTP 400 (413 when too large): the request itself is refused before any operation runs
  (not XML, DTD, not a SOAP 1.1 envelope, unknown operation or namespace, not valid against the WSDL);
- ``soap:Server``, HTTP 401: no or bad client certificate (the operator contract's 401, in SOAP form);
- ``soap:Server``, HTTP 500: every business error raised by an operation, as CXF answers them;
- ``soap:VersionMismatch``, HTTP 400: a SOAP 1.2 envelope.

So bad input never answers 500: 500 means the operation ran and refused (or failed).

Where the live service's wording differs from the v3.4 document and real clients match on the live wording
(research note ``real-clients.md`` §2 Pastell, §3 ESUP-Stage), the live wording is appended in parentheses
to the catalogue message, so that both readings match: :data:`CLIENT_WORDING`.
"""

from __future__ import annotations

from parafe.connectors.soap.codec import ENVELOPE_HEAD, ENVELOPE_TAIL, xml_text
from parafe.connectors.soap.contract import NS, Operation
from parafe.domain.errors import ParafeError

# Catalogue key -> the live service's wording that real clients test for (copied from real-clients.md; a test
# checks they are still there verbatim).
CLIENT_WORDING: dict[str, str] = {
    "DUPLICATE_FILE": "Fichier déjà depose par un agent",  # ESUP-Stage: contains(...)
    "PES_DUPLICATE_NOMFIC": "un fichier PES avec le même nomfic a deja ete envoye",  # Pastell: preg_match « Doublon »
}

CLIENT = "soap:Client"
SERVER = "soap:Server"
VERSION_MISMATCH = "soap:VersionMismatch"


def fault_string(error: ParafeError) -> str:
    """The ``faultstring``: the catalogue message, plus the live wording clients match on, if any."""
    wording = CLIENT_WORDING.get(error.error.key)
    return f"{error.message} ({wording})" if wording else error.message


def fault_body(error: ParafeError, faultcode: str = SERVER, operation: Operation | None = None) -> bytes:
    """The response envelope of a fault for ``error``."""
    message = xml_text(fault_string(error))
    details = xml_text(f"{error.code} {error.developer_message}")
    if operation is not None and operation.fault == "IOException":
        detail = f'<ns1:IOException xmlns:ns1="{NS}"><message>{message}</message></ns1:IOException>'
    else:
        detail = (f'<ns1:BusinessException xmlns:ns1="{NS}"><details>{details}</details>'
                  f"<message>{message}</message></ns1:BusinessException>")
    return (ENVELOPE_HEAD
            + (f"<soap:Fault><faultcode>{faultcode}</faultcode><faultstring>{message}</faultstring>"
               f"<detail>{detail}</detail></soap:Fault>").encode()
            + ENVELOPE_TAIL)
