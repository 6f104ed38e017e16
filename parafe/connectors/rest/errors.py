"""REST wire shape of errors (DECISIONS D2): ``{generation, developerMessage, userFriendlyMessage, errorCode}``."""

from __future__ import annotations

import logging
import time

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from parafe.domain.errors import E, ErrorDef, ParafeError

log = logging.getLogger(__name__)


def error_body(error: ErrorDef, message: str, developer: str) -> dict[str, object]:
    return {
        "generation": int(time.time() * 1000),
        "developerMessage": developer,
        "userFriendlyMessage": message,
        "errorCode": error.code,
    }


def error_response(exc: ParafeError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="parafe"'} if exc.http_status == 401 else None
    return JSONResponse(error_body(exc.error, exc.message, exc.developer_message), status_code=exc.http_status,
                        headers=headers)


async def parafe_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ParafeError)
    return error_response(exc)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    return error_response(ParafeError(E.BAD_REQUEST, reason=f"paramètre « {where} » invalide ou absent",
                                      detail=str(first.get("msg", ""))))


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(ParafeError(E.ROUTE_NOT_FOUND, detail=f"{request.method} {request.url.path}"))
    if exc.status_code == 405:
        response = error_response(ParafeError(E.METHOD_NOT_ALLOWED, detail=f"{request.method} {request.url.path}"))
        if exc.headers:
            response.headers.update(exc.headers)
        return response
    return error_response(ParafeError(E.BAD_REQUEST, reason="requête invalide", detail=str(exc.detail)))


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(ParafeError(E.INTERNAL))
