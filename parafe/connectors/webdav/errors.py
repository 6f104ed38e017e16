"""WebDAV wire shape of errors (DECISIONS D2, D6): the status of the catalogue entry, the headers
``x-fast-error: <code>`` and ``x-fast-error-msg: <message, UTF-8 percent-encoded>``, and the REST JSON body
``{generation, developerMessage, userFriendlyMessage, errorCode}``.

WsgiDAV's own errors (404, 405, 409, 412, …) keep their status and get the same shape with a catalogue entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from starlette.responses import JSONResponse
from wsgidav.dav_error import DAVError

from parafe.connectors.rest.errors import error_body
from parafe.connectors.rest.errors import error_response as rest_error_response
from parafe.domain.errors import E, ParafeError
from parafe.security.asgi_types import StartResponse


def status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Error"


def error_headers(exc: ParafeError) -> list[tuple[str, str]]:
    return [("x-fast-error", str(exc.code)), ("x-fast-error-msg", quote(exc.message, safe=""))]


def asgi_error_response(exc: ParafeError) -> JSONResponse:
    """``exc`` in the WebDAV shape for checks made on the ASGI side, before the WSGI bridge (a control
    character in the path): the REST answer plus the ``x-fast-error`` headers."""
    response = rest_error_response(exc)
    for name, value in error_headers(exc):
        response.headers[name] = value
    return response


def respond(environ: dict[str, Any], start_response: StartResponse, exc: ParafeError,
            status: int | None = None) -> Iterable[bytes]:
    """Send ``exc`` as a WebDAV error response (``status`` overrides the catalogue's HTTP status)."""
    code = status or exc.http_status
    body = json.dumps(error_body(exc.error, exc.message, exc.developer_message), ensure_ascii=False).encode()
    headers = [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(body))),
               *error_headers(exc)]
    if code == 401:
        headers.append(("WWW-Authenticate", 'Basic realm="parafe"'))
    start_response(status_line(code), headers)
    return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def from_dav_error(error: DAVError) -> tuple[ParafeError, int]:
    """A catalogue error for one of WsgiDAV's own errors, keeping its status."""
    source = getattr(error, "src_exception", None)
    if isinstance(source, ParafeError):
        return source, source.http_status
    status = int(error.value)
    if status == 404:
        return ParafeError(E.ROUTE_NOT_FOUND, detail=str(error.context_info or "")), 404
    if status == 405:
        return ParafeError(E.METHOD_NOT_ALLOWED), 405
    if status == 403:
        return ParafeError(E.NO_PERMISSION, detail=str(error.context_info or "")), 403
    if status == 409:
        return ParafeError(E.BAD_REQUEST, reason="le dossier parent n'existe pas"), 409
    if status == 412:
        return ParafeError(E.BAD_REQUEST, reason="précondition non remplie"), 412
    if status == 415:
        return ParafeError(E.BAD_REQUEST, reason="corps de requête non pris en charge"), 415
    if status == 416:
        return ParafeError(E.BAD_REQUEST, reason="plage d'octets invalide"), 416
    if 400 <= status < 500:
        return ParafeError(E.BAD_REQUEST, reason="requête WebDAV invalide",
                           detail=str(error.context_info or "")), status
    return ParafeError(E.INTERNAL, detail=str(error.context_info or "")), 500
