"""The public OSS signing pages (``/oss/signature/{token}``): server-rendered French HTML (Jinja2 templates of
``templates/``), usable with the keyboard and without JavaScript; the logic is in :mod:`parafe.services.oss.pages`.

- ``GET  /signature/{token}`` — the page: the documents, then (``sa``) the visitor's certificate or (``sms``,
  ``sgc``) the code form; the first display of a code page sends the code;
- ``POST /signature/{token}/code`` — send a new code;
- ``POST /signature/{token}/signer`` — sign (with ``code`` for code pages);
- ``POST /signature/{token}/refuser`` — refuse (optional ``motif``);
- ``GET  /signature/{token}/documents/{id}`` — view a document (PDF, inline).

At the end the visitor is redirected (303) to the publisher's ``redirectionUrl`` with ``return=SIGNED``,
``REFUSED`` or ``ERROR``; without one, a final page is shown. Certificate pages need a valid client certificate
(the TLS layer asks for one): its identity comes from the ClientIdentity middleware.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from parafe.connectors.rest.deps import call
from parafe.connectors.rest.downloads import content_disposition
from parafe.context import AppContext
from parafe.domain.errors import E, ParafeError
from parafe.notify.mail import paris
from parafe.security.identity import RequestIdentity
from parafe.services.oss import model as oss
from parafe.services.oss import pages as oss_pages
from parafe.storage.spool import CHUNK_SIZE

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)
_env.filters["paris"] = paris

KIND_TITLE = {
    "sa": "Signature après authentification par certificat",
    "sms": "Signature par code de vérification",
    "sgc": "Signature avec certificat à votre nom",
}
STATUS_TEXT = {
    oss.WAITING: "à signer", oss.SIGNING: "signature en cours", oss.SIGNED: "signé", oss.REFUSED: "refusé",
    oss.FAILED: "échec de la signature",
}
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; object-src 'self'; "
                               "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'",
}
NOTICES = {"code-envoye": "Un nouveau code de vérification vient de vous être envoyé."}


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "") or "/oss")


def _identity(request: Request) -> RequestIdentity:
    identity: RequestIdentity = request.scope.get("state", {}).get("identity") or RequestIdentity()
    return identity


def _ip(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(base=_base(request), status_text=STATUS_TEXT, **context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def _error_page(request: Request, exc: ParafeError, token: str | None = None) -> HTMLResponse:
    return render(request, "erreur.html", exc.http_status, message=exc.message, token=token)


async def _page(request: Request, token: str, *, error: str | None = None, status: int = 200,
                notice: str | None = None) -> HTMLResponse:
    ctx = _ctx(request)
    try:
        page = await call(oss_pages.view, ctx, token)
        certificate = None
        if page.kind == "sa" and page.waiting:
            try:
                certificate = await call(oss_pages.authenticate, ctx, token, _identity(request).verdict,
                                         _ip(request))
            except ParafeError as exc:
                if exc.error.code not in (E.CERT_MISSING.code, E.CERT_EXPIRED.code, E.CERT_REVOKED.code,
                                          E.CERT_UNKNOWN_CA.code, E.AUTH_UNKNOWN_USER.code):
                    raise
                return render(request, "certificat.html", 401, page=page, message=exc.message,
                              title=KIND_TITLE[page.kind])
        code_error = None
        if page.kind in ("sms", "sgc") and page.waiting and page.code is None:
            try:
                await call(oss_pages.send_code, ctx, token, only_if_none=True)
            except ParafeError as exc:
                code_error = exc.message
            page = await call(oss_pages.view, ctx, token)
    except ParafeError as exc:
        return _error_page(request, exc)
    return render(request, "page.html", status, page=page, token=token, certificate=certificate,
                  error=error or code_error, notice=notice, title=KIND_TITLE[page.kind])


@router.get("/signature/{token}")
async def page(request: Request, token: str) -> Response:
    notice = NOTICES.get(request.query_params.get("info", ""))
    return await _page(request, token, notice=notice)


@router.post("/signature/{token}/code")
async def new_code(request: Request, token: str) -> Response:
    try:
        await call(oss_pages.send_code, _ctx(request), token)
    except ParafeError as exc:
        if exc.error is E.OSS_LINK_INVALID:
            return _error_page(request, exc)
        return await _page(request, token, error=exc.message, status=exc.http_status)
    return RedirectResponse(f"{_base(request)}/signature/{token}?info=code-envoye", status_code=303)


def _finished(request: Request, outcome: oss_pages.Outcome, token: str) -> Response:
    if outcome.redirect:
        return RedirectResponse(outcome.redirect, status_code=303, headers={"Referrer-Policy": "no-referrer"})
    return render(request, "fin.html", 200, outcome=outcome, token=token)


@router.post("/signature/{token}/signer")
async def sign(request: Request, token: str) -> Response:
    ctx = _ctx(request)
    form = await request.form()
    try:
        page = await call(oss_pages.view, ctx, token)
        if page.kind == "sa":
            outcome = await call(oss_pages.sign_with_certificate, ctx, token, _identity(request).verdict,
                                 _ip(request))
        else:
            code = str(form.get("code") or "")
            outcome = await call(oss_pages.sign_with_code, ctx, token, code)
    except ParafeError as exc:
        if exc.error is E.OSS_LINK_INVALID:
            return _error_page(request, exc)
        return await _page(request, token, error=exc.message, status=exc.http_status)
    return _finished(request, outcome, token)


@router.post("/signature/{token}/refuser")
async def refuse(request: Request, token: str) -> Response:
    form = await request.form()
    try:
        outcome = await call(oss_pages.refuse, _ctx(request), token, str(form.get("motif") or ""),
                             _identity(request).verdict, _ip(request))
    except ParafeError as exc:
        if exc.error is E.OSS_LINK_INVALID:
            return _error_page(request, exc)
        return await _page(request, token, error=exc.message, status=exc.http_status)
    return _finished(request, outcome, token)


@router.get("/signature/{token}/documents/{document_id}")
async def document(request: Request, token: str, document_id: str) -> Response:
    ctx = _ctx(request)
    try:
        kind = (await call(oss_pages.view, ctx, token)).kind
        if kind == "sa":
            oss_pages.certificate_info(_identity(request).verdict)
        content = await call(oss_pages.document_content, ctx, token, document_id)
    except ParafeError as exc:
        return _error_page(request, exc, token)
    headers = {**PAGE_HEADERS, "Content-Security-Policy": "default-src 'none'; frame-ancestors 'self'",
               "Content-Disposition": content_disposition(content.filename).replace("attachment", "inline", 1)}
    local = ctx.store.local_path(content.sha256)
    if local is not None:
        return FileResponse(local, media_type="application/pdf", headers=headers)

    def chunks() -> Any:
        with ctx.store.open(content.sha256) as fh:
            while block := fh.read(CHUNK_SIZE):
                yield block

    return StreamingResponse(chunks(), media_type="application/pdf", headers=headers)


@router.get("/static/oss.css")
async def stylesheet() -> Response:
    return Response((TEMPLATES / "oss.css").read_bytes(), media_type="text/css",
                    headers={"Cache-Control": "public, max-age=3600"})
