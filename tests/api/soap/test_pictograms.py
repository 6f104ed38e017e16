"""SOAP deposits with pictograms (issue 15 point 5): ``upload`` ``pictogrammes``, ``otpUpload`` and
``uploadBSMS`` ``pictograms`` (base64Binary) reach the document and give the position its signature will use;
an invalid file is a fault with error 240 and nothing is stored. The signatures drawn at those positions are
checked in ``tests/workflow/test_pictograms.py``."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from parafe.config import Settings
from parafe.context import AppContext
from parafe.db.models import Document
from parafe.domain.errors import E
from parafe.formats.pictograms import signature_position
from tests.api.soap.soaputil import AGENT, SIREN, envelope, fault, post, returns
from tests.conftest import LiveServer
from tests.fixtures.files import pdf_bytes

PICTOS = (b'<?xml version="1.0" encoding="UTF-8"?><pictogrammes><pictogramme-signature>'
          b'<pictogramme index="1" border="true" opacite="true" font-size="6">'
          b'<position height="20" width="50" page="$" x="27" y="70"/></pictogramme>'
          b"</pictogramme-signature></pictogrammes>")
OTP_INFO = (b'<meta-data-list><meta-data name="OTP_firstname_0" value="Jean"/>'
            b'<meta-data name="OTP_lastname_0" value="Dupont"/><meta-data name="OTP_email_0" '
            b'value="jean.dupont@example.org"/><meta-data name="OTP_phonenumber_0" value="0601020304"/>'
            b"</meta-data-list>")
BSMS_META = (b'<meta-data-list><meta-data name="TEXT001" value="Jean Dupont"/>'
             b'<meta-data name="TEXT002" value="jean.dupont@example.org"/>'
             b'<meta-data name="TEXT003" value="0601020304"/></meta-data-list>')


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def vo(data: bytes, name: str) -> str:
    return f"<dataHandler>{b64(data)}</dataHandler><filename>{name}</filename>"


def upload(name: str, pictos: bytes) -> tuple[str, bytes]:
    return "upload", envelope("upload", (
        f"<label>picto</label><comment/><subscriberId>{SIREN}</subscriberId><circuitId>serveur</circuitId>"
        f"<dataFileVO>{vo(pdf_bytes(2, name), name)}</dataFileVO><pictogrammes>{b64(pictos)}</pictogrammes>"))


def otp_upload(name: str, pictos: bytes) -> tuple[str, bytes]:
    return "otpUpload", envelope("otpUpload", (
        f"<label>picto</label><comment/><siren>{SIREN}</siren><circuitId>otp</circuitId><redirectionURL/>"
        f"<document>{vo(pdf_bytes(2, name), name)}</document><otpData>{vo(OTP_INFO, f'METAS_{name}.xml')}"
        f"</otpData><pictograms>{b64(pictos)}</pictograms>"))


def upload_bsms(name: str, pictos: bytes) -> tuple[str, bytes]:
    return "uploadBSMS", envelope("uploadBSMS", (
        f"<label>picto</label><comment/><subscriberId>{SIREN}</subscriberId><circuitId>otp</circuitId>"
        f"<referrer/><dataFileVO>{vo(pdf_bytes(2, name), name)}</dataFileVO>"
        f"<metaFileVO>{vo(BSMS_META, 'meta.xml')}</metaFileVO><pictograms>{b64(pictos)}</pictograms>"))


@pytest.fixture(scope="module")
def server_ctx(soap_server: LiveServer) -> Iterator[AppContext]:
    ctx = AppContext.from_settings(Settings(home=soap_server.home.path,
                                            database_url=soap_server.home.database_url))
    yield ctx
    ctx.close()


def _count(ctx: AppContext) -> int:
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Document)) or 0)


@pytest.mark.parametrize("request_of", [upload, otp_upload, upload_bsms])
def test_pictograms_of_a_soap_deposit_reach_the_signature(soap_server: LiveServer, server_ctx: AppContext,
                                                          request_of: Any) -> None:
    name = f"picto-{request_of.__name__}.pdf"
    operation, body = request_of(name, PICTOS)
    with soap_server.client(AGENT) as c:
        first, *_ = returns(post(c, body), operation)
    with server_ctx.db.read() as s:
        document = s.get(Document, int(first.text or "0"))
        assert document is not None
        position = signature_position(document.extra.get("pictograms_xml"), 0)
    assert position is not None
    assert (position.x_mm, position.y_mm, position.page) == (27, 70, -1)


@pytest.mark.parametrize("request_of", [upload, otp_upload, upload_bsms])
def test_invalid_pictograms_fault_and_nothing_stored(soap_server: LiveServer, server_ctx: AppContext,
                                                     request_of: Any) -> None:
    before = _count(server_ctx)
    operation, body = request_of(f"picto-bad-{request_of.__name__}.pdf", PICTOS.replace(b'page="$"', b'page="9"'))
    with soap_server.client(AGENT) as c:
        r = post(c, body)
    _, string, detail = fault(r)
    assert string == "Fichier de pictogrammes invalide : la page 9 n'existe pas (le document compte 2 page(s))."
    assert (detail[0].findtext("details") or "").startswith(str(E.PICTOGRAMS_INVALID.code))
    assert _count(server_ctx) == before
