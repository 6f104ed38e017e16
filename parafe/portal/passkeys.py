"""Passkeys in the portal: « Mes clés d'accès » (enrolment) and the passkey-confirmed signature (issue 20).

- ``GET /cles-d-acces`` lists the caller's passkeys and enrols a new one (``static/passkeys.js``:
  ``navigator.credentials.create``) through ``POST /cles-d-acces/options`` then ``POST /cles-d-acces/enregistrer``
  ``{"name", "credential"}``;
- ``POST /signature/cle/preparer`` ``{"ids": [...]}`` → ``{"session", "nonce", "challenge", "signer",
  "documents": [{"id", "name", "kind", "digests": [hex]}], "options"}``; the script recomputes the challenge
  from the nonce and the digests, then asks the authenticator (``navigator.credentials.get``);
- ``POST /signature/cle/finaliser`` ``{"session", "credential"}`` → ``{"results": [{"id", "name", "ok",
  "message"}]}``;
- ``POST /admin/cles-d-acces/{id}/revoquer`` and ``…/valider`` (subscriber administrators, from the user's admin
  page): revoke a passkey; validate one enrolled after a password login.

JSON endpoints need the CSRF token in ``X-CSRF-Token``. The relying party is the portal's public address
(``PARAFE_PUBLIC_URL``) when set, else the address the browser used. The work is done by
:mod:`parafe.services.signers.passkeys`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from parafe.domain.errors import E, ParafeError
from parafe.portal.signing import _error, _json_body
from parafe.portal.web import call, check_post, csrf_subject, ctx_of, page, principal_of, read_form, redirect, render
from parafe.services.signers import passkeys


def relying_party(request: Request) -> passkeys.RelyingParty:
    public = ctx_of(request).settings.public_url
    if public:
        parts = urlsplit(public)
        return passkeys.RelyingParty(parts.hostname or "", f"{parts.scheme}://{parts.netloc}")
    return passkeys.RelyingParty(request.url.hostname or "", f"{request.url.scheme}://{request.url.netloc}")


@page
async def passkeys_page(request: Request, principal: Any) -> Response:
    rows = await call(passkeys.passkeys_of, ctx_of(request), principal)
    has_key, _active = await call(passkeys.can_sign, ctx_of(request), principal)
    return render(request, "passkeys.html", {"passkeys": rows, "has_key": has_key}, principal=principal)


async def _json_call(request: Request, action: Any) -> Response:
    try:
        principal = await principal_of(request)
        await check_post(request, csrf_subject(principal))
        data = await _json_body(request)
        return JSONResponse(await action(principal, data))
    except ParafeError as error:
        return _error(error)


def _credential(data: dict[str, Any]) -> dict[str, Any]:
    credential = data.get("credential")
    if not isinstance(credential, dict):
        raise ParafeError(E.BAD_REQUEST, reason="« credential » est obligatoire")
    return credential


async def registration_options(request: Request) -> Response:
    async def action(principal: Any, data: dict[str, Any]) -> Any:
        options = await call(passkeys.begin_registration, ctx_of(request), principal, relying_party(request))
        return {"options": json.loads(options)}
    return await _json_call(request, action)


async def register(request: Request) -> Response:
    async def action(principal: Any, data: dict[str, Any]) -> Any:
        view = await call(passkeys.finish_registration, ctx_of(request), principal, relying_party(request),
                          _credential(data), str(data.get("name") or ""))
        return {"id": view.id, "name": view.name}
    return await _json_call(request, action)


async def prepare(request: Request) -> Response:
    async def action(principal: Any, data: dict[str, Any]) -> Any:
        ids = data.get("ids")
        if not isinstance(ids, list):
            raise ParafeError(E.BAD_REQUEST, reason="« ids » est obligatoire")
        prepared = await call(passkeys.prepare_signature, ctx_of(request), principal, relying_party(request), ids)
        return {"session": prepared.session_id, "nonce": prepared.nonce, "challenge": prepared.challenge,
                "signer": prepared.signer, "documents": prepared.documents, "options": json.loads(prepared.options)}
    return await _json_call(request, action)


async def finish(request: Request) -> Response:
    async def action(principal: Any, data: dict[str, Any]) -> Any:
        session = data.get("session")
        if not isinstance(session, str):
            raise ParafeError(E.BAD_REQUEST, reason="« session » est obligatoire")
        outcomes = await call(passkeys.finish_signature, ctx_of(request), principal, relying_party(request),
                              session, _credential(data))
        return {"results": [{"id": o.id, "name": o.name, "ok": o.ok, "message": o.message} for o in outcomes]}
    return await _json_call(request, action)


async def _admin_action(request: Request, principal: Any, action: Any) -> Response:
    form = await read_form(request, principal)
    raw = str(request.path_params.get("passkey_id", ""))
    if not raw.isdigit():
        raise ParafeError(E.PASSKEY_NOT_FOUND)
    await call(action, ctx_of(request), principal, int(raw))
    back = str(form.get("back") or "")
    safe = back.startswith("/admin/") and "//" not in back and "?" not in back and "\\" not in back
    return redirect(f"{back if safe else '/admin'}?ok=enregistre")


@page
async def revoke(request: Request, principal: Any) -> Response:
    return await _admin_action(request, principal, passkeys.revoke)


@page
async def validate(request: Request, principal: Any) -> Response:
    return await _admin_action(request, principal, passkeys.validate)


routes = [
    Route("/cles-d-acces", passkeys_page, methods=["GET"]),
    Route("/cles-d-acces/options", registration_options, methods=["POST"]),
    Route("/cles-d-acces/enregistrer", register, methods=["POST"]),
    Route("/signature/cle/preparer", prepare, methods=["POST"]),
    Route("/signature/cle/finaliser", finish, methods=["POST"]),
    Route("/admin/cles-d-acces/{passkey_id}/revoquer", revoke, methods=["POST"]),
    Route("/admin/cles-d-acces/{passkey_id}/valider", validate, methods=["POST"]),
]
