"""The fault texts real clients match on (research note real-clients.md §9.5) are in the faults of the
matching cases; the live wordings appended for them are copied verbatim from the research note."""

from __future__ import annotations

import re
import unicodedata

from lxml import etree

from parafe.connectors.soap import faults
from parafe.connectors.soap.contract import CONTRACT, NS, SOAP_ENV
from parafe.domain.errors import E, ParafeError
from tests.conftest import SPEC

RESEARCH = (SPEC / "real-clients.md").read_text(encoding="utf-8")


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()


def _faultstring(error: ParafeError) -> str:
    root = etree.fromstring(faults.fault_body(error))
    return root.findtext(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault/faultstring") or ""


def test_live_wordings_come_from_the_research_note() -> None:
    for key, wording in faults.CLIENT_WORDING.items():
        assert wording in RESEARCH, key
        assert key in {e.key for e in E.__dict__.values() if hasattr(e, "key")}


def test_section_9_5_keywords() -> None:
    checklist = RESEARCH[RESEARCH.index("5. Faults: SOAP 1.1"):]
    checklist = checklist[:checklist.index("\n6.")]
    keywords = re.findall(r'"([^"]+)"', checklist)
    assert keywords == ["n'existe pas", "inconnu", "deja depose par un agent", "même nomfic"]
    cases = {
        "n'existe pas": [E.DOCUMENT_NOT_FOUND, E.NODE_NOT_FOUND],
        "inconnu": [E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN],
        "deja depose par un agent": [E.DUPLICATE_FILE],
        "même nomfic": [E.PES_DUPLICATE_NOMFIC],
    }
    for keyword, entries in cases.items():
        for entry in entries:
            assert _fold(keyword) in _fold(_faultstring(ParafeError(entry))), (keyword, entry.key)


def test_exact_client_patterns() -> None:
    # Pastell (DocapostParapheurSoapClient::upload): case- and accent-sensitive regex for « Doublon ».
    assert re.search("un fichier PES avec le même nomfic a deja ete envoye",
                     _faultstring(ParafeError(E.PES_DUPLICATE_NOMFIC)))
    # ESUP-Stage (DocaposteClient): String.contains on the upload fault.
    assert "Fichier déjà depose par un agent" in _faultstring(ParafeError(E.DUPLICATE_FILE))
    # Esup-Oasis (ClientFast): an unknown document.
    oasis = re.compile(r"inconnu|introuvable|n.existe pas|does not exist|not found")
    for entry in (E.DOCUMENT_NOT_FOUND, E.NODE_NOT_FOUND, E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN):
        assert oasis.search(_faultstring(ParafeError(entry)))
    # Every other fault carries the catalogue message unchanged.
    assert _faultstring(ParafeError(E.DELETE_NOT_ALLOWED)) == E.DELETE_NOT_ALLOWED.message


def test_fault_detail_is_the_wsdl_fault_element() -> None:
    body = faults.fault_body(ParafeError(E.NOT_REFUSED), operation=CONTRACT.operations["getRefusalMessage"])
    detail = etree.fromstring(body).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault/detail")
    assert detail is not None
    assert detail[0].tag == f"{{{NS}}}BusinessException"
    CONTRACT.schema.assertValid(detail[0])
    io = faults.fault_body(ParafeError(E.NOT_REFUSED), operation=CONTRACT.operations["uploadPJ"])
    detail = etree.fromstring(io).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault/detail")
    assert detail is not None
    assert detail[0].tag == f"{{{NS}}}IOException"
    CONTRACT.schema.assertValid(detail[0])
