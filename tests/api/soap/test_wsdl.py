"""The live WSDL: both files served, byte for byte except the service's own address (issue 4, "Build")."""

from __future__ import annotations

import re

from lxml import etree

from parafe.connectors.soap.contract import CONTRACT, WSDL
from tests.api.soap.soaputil import AGENT, ENDPOINT
from tests.conftest import SPEC, LiveServer

SPEC_WSDL = SPEC / "wsdl"


def test_outer_wsdl_only_addresses_rewritten(soap_server: LiveServer) -> None:
    with soap_server.client(AGENT) as c:
        r = c.get(f"{ENDPOINT}?wsdl")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/xml")
    original = (SPEC_WSDL / "Documents.wsdl").read_bytes()
    endpoint = f"{soap_server.url}{ENDPOINT}"
    expected = original.replace(
        b'location="https://demo-parapheur.dfast.fr/parapheur-soap/soap/v1/Documents"',
        f'location="{endpoint}"'.encode()).replace(
        b'location="DocumentService.wsdl"', f'location="{endpoint}?wsdl=DocumentService.wsdl"'.encode())
    assert expected != original
    assert r.content == expected


def test_inner_wsdl_byte_for_byte(soap_server: LiveServer) -> None:
    with soap_server.client(AGENT) as c:
        r = c.get(f"{ENDPOINT}?wsdl=DocumentService.wsdl")
        upper = c.get(f"{ENDPOINT}?WSDL=DocumentService.wsdl")
        unknown = c.get(f"{ENDPOINT}?wsdl=other.xsd")
    assert r.status_code == 200
    assert r.content == (SPEC_WSDL / "DocumentService.wsdl").read_bytes()
    assert upper.content == r.content
    assert unknown.status_code == 404


def test_address_follows_host_header_and_refuses_garbage(soap_server: LiveServer) -> None:
    with soap_server.client(AGENT) as c:
        r = c.get(f"{ENDPOINT}?wsdl", headers={"Host": "parapheur.example.fr:9443"})
        evil = c.get(f"{ENDPOINT}?wsdl", headers={"Host": 'x"/><evil a="'})
    assert b'location="https://parapheur.example.fr:9443/parapheur-soap/soap/v1/Documents"' in r.content
    etree.fromstring(evil.content)  # still well-formed
    assert b"evil" not in evil.content


def test_served_wsdl_declares_the_31_operations(soap_server: LiveServer) -> None:
    with soap_server.client(AGENT) as c:
        outer = etree.fromstring(c.get(f"{ENDPOINT}?wsdl").content)
    names = {op.get("name") for op in outer.iter(f"{{{WSDL}}}operation")}
    assert len(names) == 31
    assert names == set(CONTRACT.operations)
    for expected in ("getCircuits", "searchDetails", "listRemainingSignedDocs", "getProperties",
                     "getPropertiesByName", "rawdelete", "uploadPJ", "uploadOnDemand", "ExportUsersData"):
        assert expected in names
    soap_actions = re.findall(rb'soapAction="([^"]*)"', (SPEC_WSDL / "Documents.wsdl").read_bytes())
    assert set(soap_actions) == {b""}


def test_get_without_wsdl_points_to_it(soap_server: LiveServer) -> None:
    with soap_server.client(AGENT) as c:
        r = c.get(ENDPOINT)
    assert r.status_code == 200
    assert f"{ENDPOINT}?wsdl" in r.text
