"""The connectors' one recording point for the compliance report (issue 21): an ASGI middleware.

For every answered request under a connector's path (REST, SOAP, WebDAV, OSS) made with a client certificate,
it hands what it saw on the wire — method, path, status, error code (``x-fast-error`` header, REST JSON
``errorCode``, SOAP fault ``details``), the SOAP operation the endpoint noted in ``scope["state"]`` — to
:func:`parafe.services.compliance.classify.classify` and the process's recorder. It reads at most
:data:`ERROR_BODY_LIMIT` bytes of error answers and nothing of successful ones; the recorder only updates
in-memory counters (batched writes), so the cost per request stays in microseconds.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from parafe.context import AppContext
from parafe.security.asgi_types import Scope
from parafe.services.compliance.classify import classify, connector_of
from parafe.services.compliance.recorder import ClientCert, recorder

log = logging.getLogger(__name__)

ERROR_BODY_LIMIT = 8192
SOAP_OPERATION = "parafe_soap_operation"  # scope["state"] key the SOAP endpoint fills
_SOAP_CODE = re.compile(rb"<details>(\d{3}) ")
_CERTS: dict[str, ClientCert] = {}


def note_soap_operation(scope: Scope, operation: str | None) -> None:
    """Called by the SOAP endpoint once it knows the operation of the request."""
    scope.setdefault("state", {})[SOAP_OPERATION] = operation


def _client_cert(scope: Scope) -> ClientCert | None:
    identity = (scope.get("state") or {}).get("identity")
    verdict = getattr(identity, "verdict", None)
    fingerprint = getattr(verdict, "fingerprint", None)
    if not fingerprint:
        return None
    found = _CERTS.get(fingerprint)
    if found is None:
        cert = getattr(verdict, "cert", None)
        subject = not_after = None
        if cert is not None:
            subject = cert.subject.rfc4514_string()
            not_after = cert.not_valid_after_utc
        found = ClientCert(fingerprint, subject or "", getattr(verdict, "email", None), not_after)
        if len(_CERTS) > 10_000:
            _CERTS.clear()
        _CERTS[fingerprint] = found
    return found


def _error_code(connector: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int | None:
    for name, value in headers:
        if name.lower() == b"x-fast-error":
            try:
                return int(value)
            except ValueError:
                return None
    if not body:
        return None
    if connector == "soap":
        match = _SOAP_CODE.search(body)
        return int(match.group(1)) if match else None
    try:
        code = json.loads(body).get("errorCode")
        return int(code) if code is not None else None
    except (ValueError, AttributeError, TypeError):
        return None


class ComplianceRecording:
    def __init__(self, app: Callable[..., Awaitable[None]], ctx: AppContext) -> None:
        self.app = app
        self.ctx = ctx
        self.enabled = ctx.settings.compliance

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if not self.enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        connector = connector_of(path)
        cert = _client_cert(scope) if connector else None
        if connector is None or cert is None:
            await self.app(scope, receive, send)
            return
        seen: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

        async def watching(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["headers"] = list(message.get("headers") or [])
            elif (message["type"] == "http.response.body" and seen["status"] >= 400
                  and len(seen["body"]) < ERROR_BODY_LIMIT):
                seen["body"] += bytes(message.get("body", b""))[:ERROR_BODY_LIMIT]
            await send(message)

        try:
            await self.app(scope, receive, watching)
        finally:
            try:
                status = int(seen["status"])
                code = _error_code(connector, seen["headers"], seen["body"]) if status >= 400 else None
                operation = (scope.get("state") or {}).get(SOAP_OPERATION)
                obs = classify(scope.get("method", "GET"), path, status, code, operation)
                if obs is not None:
                    recorder(self.ctx).observe(cert, obs)
            except Exception:  # recording must never break an answer
                log.exception("compliance recording failed")
