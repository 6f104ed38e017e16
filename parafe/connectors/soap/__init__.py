"""SOAP connector (spec §2.5), contract-first: the live WSDL served as is, lxml dispatch, no SOAP framework.

Mounted under ``/parapheur-soap``; the endpoint is ``/parapheur-soap/soap/v1/Documents`` (see ``docs/soap.md``).
"""

from __future__ import annotations

from parafe.connectors.soap.endpoint import create_soap_app

__all__ = ["create_soap_app"]
