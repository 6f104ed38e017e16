"""Serving the two static WSDL files, rewritten only where the service's own address appears.

``GET …/Documents?wsdl`` answers ``Documents.wsdl`` and ``GET …/Documents?wsdl=DocumentService.wsdl`` answers
``DocumentService.wsdl``. In the first, exactly two attributes change: ``soap:address/@location`` (clients,
Pastell first, POST to it, so it must name this server) and the ``wsdl:import/@location``, made absolute like
the live CXF service (``…/Documents?wsdl=DocumentService.wsdl``). Every other byte is the file's.
"""

from __future__ import annotations

import re
from functools import cache
from xml.sax.saxutils import quoteattr

from parafe.connectors.soap.contract import INNER_WSDL, OUTER_WSDL, WSDL_DIR

_ADDRESS = re.compile(rb'(<soap:address\s+location=)"[^"]*"')
_IMPORT = re.compile(rb'(<wsdl:import\s+location=)"[^"]*"')
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


@cache
def _original(name: str) -> bytes:
    return (WSDL_DIR / name).read_bytes()


def safe_host(host: str | None, fallback: str) -> str:
    """The request's Host header if it is a plain host[:port], else ``fallback`` (never echo arbitrary text)."""
    if host and _HOST.match(host.strip()):
        return host.strip()
    return fallback


def outer_wsdl(endpoint_url: str) -> bytes:
    """``Documents.wsdl`` with ``soap:address`` = ``endpoint_url`` and the absolute import location."""
    address = quoteattr(endpoint_url).encode()
    import_location = quoteattr(f"{endpoint_url}?wsdl={INNER_WSDL}").encode()
    data = _ADDRESS.sub(lambda m: m.group(1) + address, _original(OUTER_WSDL), count=1)
    return _IMPORT.sub(lambda m: m.group(1) + import_location, data, count=1)


def inner_wsdl() -> bytes:
    return _original(INNER_WSDL)
