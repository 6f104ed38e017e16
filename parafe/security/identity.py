"""ClientIdentity: one ASGI middleware giving every request what the transport proved about the caller.

Sources, in order:
(a) the TLS client certificate when Parafe terminates TLS itself (``scope["extensions"]["tls"]``, filled by
    :mod:`parafe.server.protocol`);
(b) the ``X-SSL-Client-Cert`` header (URL-encoded PEM, nginx ``$ssl_client_escaped_cert``), trusted only when
    the TCP peer is one of the configured proxies (``PARAFE_TRUSTED_PROXIES``); from anyone else the header is
    removed before the application sees it.
The certificate is verified (CA bundle, validity, CRL) by :class:`CertificateVerifier`; ``Authorization: Basic``
credentials are parsed (verified later against the database); an empty user with an empty password counts as no
Basic header at all. The result is stored as
``scope["state"]["identity"]`` (a :class:`RequestIdentity`); the connectors turn it into a principal
(:mod:`parafe.services.access.auth`), or into a 401 in their own wire format.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from dataclasses import dataclass
from urllib.parse import unquote

from parafe.security.asgi_types import ASGIApp, Receive, Scope, Send
from parafe.security.certcheck import CertificateVerifier, CertVerdict

_PROXY_HEADERS = (b"x-ssl-client-cert", b"x-ssl-client-verify", b"x-ssl-client-s-dn")


# Basic credentials that cannot be decoded (not base64, not UTF-8, no ":"): no account has an empty login, so
# they are refused like a wrong password (165), not taken for an absent header (161).
MALFORMED_BASIC = ("", "\x00")


@dataclass(frozen=True)
class RequestIdentity:
    """What the transport proved about the caller, before any database lookup."""

    verdict: CertVerdict | None = None
    basic: tuple[str, str] | None = None
    client: str | None = None  # the client's address (Basic authentication throttling)


def parse_basic(value: bytes) -> tuple[str, str] | None:
    """``Basic <base64(login:password)>`` (any case of "Basic", as the spec writes "BASIC"), None for another
    scheme, :data:`MALFORMED_BASIC` for a Basic header that cannot be decoded."""
    parts = value.split(None, 1)
    if not parts or parts[0].lower() != b"basic":
        return None
    if len(parts) != 2:
        return MALFORMED_BASIC
    try:
        decoded = base64.b64decode(parts[1].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return MALFORMED_BASIC
    login, sep, password = decoded.partition(":")
    return (login, password) if sep else MALFORMED_BASIC


def _der_from_header(value: bytes) -> bytes | None:
    text = unquote(value.decode("latin-1")).strip()
    if not text or text == "(null)":
        return None
    try:
        return ssl.PEM_cert_to_DER_cert(text)
    except ValueError:
        return b"invalid"


class ClientIdentityMiddleware:
    def __init__(self, app: ASGIApp, verifier: CertificateVerifier, trusted_proxies: frozenset[str]) -> None:
        self.app = app
        self.verifier = verifier
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        der: bytes | None = None
        tls = (scope.get("extensions") or {}).get("tls")
        if tls:
            der = tls.get("client_cert_der") or None
        client = scope.get("client")
        from_proxy = client is not None and client[0] in self.trusted_proxies
        headers = scope.get("headers") or []
        basic = None
        kept = []
        for name, value in headers:
            if name in _PROXY_HEADERS:
                if from_proxy and name == b"x-ssl-client-cert" and der is None:
                    der = _der_from_header(value)
                if not from_proxy:
                    continue
            elif name == b"authorization":
                basic = parse_basic(value)
                if basic == ("", ""):
                    # An empty user AND password (``Basic Og==``) carries no claim: PHP's SoapClient sends it with
                    # ``'login' => ''`` beside the client certificate (Pastell), and FAST ignores it. Any other
                    # Basic header, even with a valid certificate, is checked and keeps its 401 when wrong.
                    basic = None
            kept.append((name, value))
        scope["headers"] = kept
        verdict = self.verifier.verify_der(der)
        scope.setdefault("state", {})["identity"] = RequestIdentity(
            verdict=verdict, basic=basic, client=client[0] if client else None)
        await self.app(scope, receive, send)
