"""Signing with the signer's own certificate, through the local helper ``parafe-signer`` (see docs/portal.md).

``GET /signature?ids=…`` lists the documents to sign (one, or several for a bulk signature with one
confirmation) and loads ``static/signer.js``, which talks to the helper on 127.0.0.1 and to two JSON endpoints:

- ``POST /signature/preparer`` ``{"ids": [...], "certificates": [PEM, ...]}`` →
  ``{"session", "signer", "documents": [{"id", "name", "kind", "requests": [{"data_to_sign", "digest",
  "digest_info", "algorithm"}], "prepared"}]}`` (base64 values; ``prepared`` is the prepared PDF the helper
  checks before signing);
- ``POST /signature/finaliser`` ``{"session", "signatures": {"<id>": [base64, ...]}}`` →
  ``{"results": [{"id", "name", "ok", "message"}]}``.

Both need the CSRF token in ``X-CSRF-Token`` and a JSON body; the work is done by
:mod:`parafe.services.signers.remote_signing`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from parafe.domain.errors import E, ParafeError
from parafe.portal.web import call, check_post, csrf_subject, ctx_of, page, principal_of, render
from parafe.services.portal import lists
from parafe.services.signers import passkeys, remote_signing

BODY_LIMIT = 1024 * 1024
DEFAULT_HELPER_PORT = 36123


def _ids(raw: str) -> list[int]:
    out: list[int] = []
    for part in raw.replace(";", ",").split(","):
        part = part.strip()
        if part.isdigit() and int(part) not in out:
            out.append(int(part))
    return out


@page
async def signing_page(request: Request, principal: Any) -> Response:
    wanted = _ids(",".join(request.query_params.getlist("ids")))
    pending = await call(lists.pending, ctx_of(request), principal)
    rows = [r for r in pending if r.action == "signature" and r.id in wanted]
    has_key, passkey_count = await call(passkeys.can_sign, ctx_of(request), principal)
    return render(request, "signing.html", {"rows": rows, "ignored": len(wanted) - len(rows),
                                            "helper_port": DEFAULT_HELPER_PORT, "passkey_key": has_key,
                                            "passkey_count": passkey_count}, principal=principal)


async def _json_body(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise ParafeError(E.BAD_REQUEST, reason="corps JSON attendu")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > BODY_LIMIT:
            raise ParafeError(E.FILE_TOO_LARGE)
    try:
        data = json.loads(body)
    except ValueError:
        raise ParafeError(E.BAD_REQUEST, reason="JSON illisible") from None
    if not isinstance(data, dict):
        raise ParafeError(E.BAD_REQUEST, reason="un objet JSON est attendu")
    return data


def _error(error: ParafeError) -> JSONResponse:
    return JSONResponse({"errorCode": error.code, "message": error.message}, status_code=error.http_status)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def prepare(request: Request) -> Response:
    try:
        principal = await principal_of(request)
        await check_post(request, csrf_subject(principal))
        data = await _json_body(request)
        ids = data.get("ids")
        certificates = data.get("certificates")
        if not isinstance(ids, list) or not isinstance(certificates, list) or not certificates:
            raise ParafeError(E.BAD_REQUEST, reason="« ids » et « certificates » sont obligatoires")
        prepared = await call(remote_signing.prepare, ctx_of(request), principal, ids,
                              [str(c) for c in certificates])
    except ParafeError as error:
        return _error(error)
    return JSONResponse({
        "session": prepared.session_id, "signer": prepared.signer,
        "documents": [{"id": d.id, "name": d.name, "kind": d.kind,
                       "requests": [r.to_dict() for r in d.requests],
                       "prepared": _b64(d.prepared) if d.prepared is not None else None}
                      for d in prepared.documents]})


async def finish(request: Request) -> Response:
    try:
        principal = await principal_of(request)
        await check_post(request, csrf_subject(principal))
        data = await _json_body(request)
        raw = data.get("signatures")
        session = data.get("session")
        if not isinstance(raw, dict) or not isinstance(session, str):
            raise ParafeError(E.BAD_REQUEST, reason="« session » et « signatures » sont obligatoires")
        values: dict[int, list[str | bytes]] = {}
        for key, items in raw.items():
            if not str(key).isdigit() or not isinstance(items, list):
                raise ParafeError(E.BAD_REQUEST, reason="« signatures » : {identifiant: [valeurs base64]}")
            values[int(key)] = [str(v) for v in items]
        outcomes = await call(remote_signing.finish, ctx_of(request), principal, session, values)
    except ParafeError as error:
        return _error(error)
    return JSONResponse({"results": [{"id": o.id, "name": o.name, "ok": o.ok, "message": o.message}
                                     for o in outcomes]})


routes = [
    Route("/signature", signing_page, methods=["GET"]),
    Route("/signature/preparer", prepare, methods=["POST"]),
    Route("/signature/finaliser", finish, methods=["POST"]),
]
