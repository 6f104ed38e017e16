"""Helpers of the SOAP tests: raw envelopes, faults, zeep clients and a module-scoped server over TLS."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from parafe.connectors.soap.contract import NS, SOAP_ENV
from tests.conftest import Home, LiveServer, start_server, stop_server

ENDPOINT = "/parapheur-soap/soap/v1/Documents"
AGENT = "agent@demo.parafe.test"
ADMIN = "admin@demo.parafe.test"
SIGNER = "signataire@demo.parafe.test"
OTHER = "agent@autre.parafe.test"
SIREN = "123456789"
NO_WORKER = {"PARAFE_WORKER_IN_PROCESS": "false"}  # documents stay where the tests put them
PHP = shutil.which("php")
CURL = shutil.which("curl")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def envelope(operation: str, inner: str = "", prefix: str = "sei") -> bytes:
    """A request envelope as Maarch writes it (``soapenv``/``sei`` prefixes, unqualified children)."""
    return (f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:{prefix}="{NS}"><soapenv:Header/>'
            f"<soapenv:Body><{prefix}:{operation}>{inner}</{prefix}:{operation}></soapenv:Body>"
            "</soapenv:Envelope>").encode()


def post(client: httpx.Client, body: bytes, *, path: str = ENDPOINT, soapaction: str | None = None,
         content_type: str = "text/xml; charset=utf-8") -> httpx.Response:
    headers = {"Content-Type": content_type}
    if soapaction is not None:
        headers["SOAPAction"] = soapaction
    return client.post(path, content=body, headers=headers)


def body_of(response: httpx.Response) -> etree._Element:
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{SOAP_ENV}}}Envelope", response.text[:500]
    body = root.find(f"{{{SOAP_ENV}}}Body")
    assert body is not None
    return body[0]


def result(response: httpx.Response, operation: str) -> etree._Element:
    assert response.status_code == 200, response.text[:2000]
    wrapper = body_of(response)
    assert wrapper.tag == f"{{{NS}}}{operation}Response", wrapper.tag
    return wrapper


def returns(response: httpx.Response, operation: str) -> list[etree._Element]:
    wrapper = result(response, operation)
    children = list(wrapper)
    assert all(c.tag == "return" for c in children), [c.tag for c in children]  # unqualified
    return children


def fault(response: httpx.Response) -> tuple[str, str, etree._Element]:
    """(faultcode, faultstring, detail element) of a SOAP 1.1 fault answer."""
    assert response.headers["content-type"].startswith("text/xml"), response.headers
    node = body_of(response)
    assert node.tag == f"{{{SOAP_ENV}}}Fault", response.text[:2000]
    code = node.find("faultcode")
    string = node.find("faultstring")
    detail = node.find("detail")
    assert code is not None, response.text
    assert string is not None, response.text
    assert detail is not None, response.text  # unqualified
    return code.text or "", string.text or "", detail


def zeep_client(server: LiveServer, email: str | None = AGENT, cert: tuple[str, str] | None = None) -> Any:
    """A zeep client generated from the WSDL the server serves, with the demo user's certificate."""
    import requests
    import zeep
    from zeep.transports import Transport

    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    session.verify = server.home.ca
    if email is not None:
        session.cert = server.home.demo(email)
    elif cert is not None:
        session.cert = cert
    return zeep.Client(f"{server.url}{ENDPOINT}?wsdl", transport=Transport(session=session, timeout=120))


def module_server(tmp_path_factory: pytest.TempPathFactory, pki_template: Path,
                  extra_env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """A server over TLS on a fresh SQLite home (initialised by its first start), shared by the tests of one
    module (workflow worker off)."""
    path = tmp_path_factory.mktemp("soap-home") / "home"
    shutil.copytree(pki_template, path)
    home = Home(path=path, backend="sqlite", database_url=f"sqlite:///{path / 'parafe.db'}")
    server = start_server(home, {**NO_WORKER, **(extra_env or {})})
    try:
        yield server
    finally:
        stop_server(server)


def require_php() -> str:
    """The php binary; in CI its absence FAILS the test (the test script installs php-cli php-soap)."""
    if PHP is None:
        if IN_CI:
            pytest.fail("php is not installed in CI (scripts/apt-test-packages.txt lists php-cli php-soap)")
        pytest.skip("php not installed (apt-get install php-cli php-soap php-curl php-xml)")
    probe = subprocess.run([PHP, "-r", "echo class_exists('SoapClient') ? 'ok' : 'no';"], capture_output=True,
                           text=True)
    if probe.stdout.strip() != "ok":
        if IN_CI:
            pytest.fail("php-soap is not installed in CI")
        pytest.skip("php-soap not installed")
    return PHP


def require_curl() -> str:
    if CURL is None:
        if IN_CI:
            pytest.fail("curl is not installed in CI")
        pytest.skip("curl not installed")
    return CURL
