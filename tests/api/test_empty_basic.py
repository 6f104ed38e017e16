"""A verified client certificate with an empty Basic header (``Basic Og==``) on every connector (issue 14).

PHP's SoapClient built with ``'login' => ''`` (Pastell) sends ``Authorization: Basic Og==`` beside its client
certificate; FAST ignores empty credentials, so Parafe must too, on SOAP, REST, WebDAV, OSS and the portal. A
Basic header with a non-empty user that does not match still answers 401 in the connector's own format, and an
empty Basic header alone is no identity at all (certificate absent).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from parafe.domain.errors import E, ErrorDef
from tests.api.soap.soaputil import module_server
from tests.conftest import LiveServer

AGENT = "agent@demo.parafe.test"
EMPTY = "Basic " + base64.b64encode(b":").decode()  # "Basic Og=="
WRONG = "Basic " + base64.b64encode(b"inconnu@demo.parafe.test:mauvais").decode()
SOAP_ENDPOINT = "/parapheur-soap/soap/v1/Documents"
GET_CIRCUITS = (b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
                b'xmlns:sei="http://sei.ws.fast.cdc.com/"><soapenv:Body><sei:getCircuits><siren>123456789</siren>'
                b'</sei:getCircuits></soapenv:Body></soapenv:Envelope>')


def _soap_wsdl(c: httpx.Client) -> httpx.Response:
    return c.get(f"{SOAP_ENDPOINT}?wsdl")


def _soap_call(c: httpx.Client) -> httpx.Response:
    return c.post(SOAP_ENDPOINT, content=GET_CIRCUITS, headers={"Content-Type": "text/xml; charset=utf-8"})


def _rest(c: httpx.Client) -> httpx.Response:
    return c.get("/parapheur-ws/rest/v1/documents/v2/100999999/history")


def _webdav(c: httpx.Client) -> httpx.Response:
    return c.request("PROPFIND", "/partage/webdav/clients", headers={"Depth": "0"})


def _oss(c: httpx.Client) -> httpx.Response:
    return c.get("/oss/docInformation/100999999")


def _portal(c: httpx.Client) -> httpx.Response:
    return c.get("/tableau-de-bord")


def _soap_error(r: httpx.Response) -> str:
    assert b"<faultstring>" in r.content, r.text
    return r.text.split("<faultstring>")[1].split("</faultstring>")[0]


def _rest_error(r: httpx.Response) -> str:
    return str(r.json()["userFriendlyMessage"])


def _webdav_error(r: httpx.Response) -> str:
    return unquote(r.headers["x-fast-error-msg"], encoding="utf-8")


def _portal_error(r: httpx.Response) -> str:
    return r.text


CONNECTORS: dict[str, tuple[Callable[[httpx.Client], httpx.Response], Callable[[httpx.Response], str]]] = {
    "soap-wsdl": (_soap_wsdl, _soap_error),
    "soap": (_soap_call, _soap_error),
    "rest": (_rest, _rest_error),
    "webdav": (_webdav, _webdav_error),
    "oss": (_oss, _rest_error),
    "portal": (_portal, _portal_error),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki_template: Path) -> Iterator[LiveServer]:
    yield from module_server(tmp_path_factory, pki_template)


def _message_in(text: str, error: ErrorDef) -> bool:
    return error.message in text or error.message.replace("'", "&#39;") in text or \
        error.message.replace("'", "&#x27;") in text


@pytest.mark.parametrize("connector", sorted(CONNECTORS))
def test_certificate_with_empty_basic_is_the_certificate(server: LiveServer, connector: str) -> None:
    call, _ = CONNECTORS[connector]
    with server.client(AGENT) as plain:
        expected = call(plain)
    with server.client(AGENT, headers={"Authorization": EMPTY}) as pastell:
        got = call(pastell)
    assert expected.status_code != 401, expected.text
    assert got.status_code == expected.status_code, got.text
    if connector == "soap-wsdl":
        assert got.content == expected.content


@pytest.mark.parametrize("connector", sorted(CONNECTORS))
def test_certificate_with_a_wrong_basic_user_keeps_its_401(server: LiveServer, connector: str) -> None:
    call, error_of = CONNECTORS[connector]
    with server.client(AGENT, headers={"Authorization": WRONG}) as c:
        r = call(c)
    assert r.status_code == 401, r.text
    assert _message_in(error_of(r), E.BAD_CREDENTIALS), error_of(r)


@pytest.mark.parametrize("connector", sorted(CONNECTORS))
def test_empty_basic_without_certificate_is_no_identity(server: LiveServer, connector: str) -> None:
    call, error_of = CONNECTORS[connector]
    with server.client(headers={"Authorization": EMPTY}) as c:
        r = call(c)
    assert r.status_code == 401, r.text
    assert _message_in(error_of(r), E.CERT_MISSING), error_of(r)
