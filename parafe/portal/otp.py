"""The public OTP signing page (spec §2.2, §2.5.17, §7; DECISIONS D15): ``/boucle-sms/documentView?id=<token>``.

No certificate: the link token (≥ 128 random bits, made by :mod:`parafe.services.otp.links`) is the access
right, and the one-time code sent by SMS (or e-mail) proves the signer. One page covers every document of the
link, signed with one code. The page posts to itself (``action`` = ``code`` | ``signer`` | ``refuser``), with a
CSRF token bound to the link token. At the end the signer goes back to the business software with
``return=SIGNED|REFUSED|ERROR|NONE`` appended to its URL (spec §7.2), when the link has one.

Responses carry ``Referrer-Policy: same-origin`` (the token must not leak to other sites) and a CSP whose
``form-action`` also allows the business software's origin (the redirect follows a form post).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parafe.domain.errors import E, ParafeError
from parafe.portal import forms, security
from parafe.portal.documents import content_response
from parafe.portal.web import call, check_post, csrf_for, ctx_of, error_page, redirect, render
from parafe.services.otp import pages as otp_pages

PATH = "/boucle-sms/documentView"


def _headers(page: otp_pages.OtpPage | None) -> dict[str, str]:
    extra = security.origin_of(page.referer) if page is not None else None
    return {"Content-Security-Policy": security.content_security_policy(extra), "Referrer-Policy": "same-origin"}


def _token(request: Request) -> str:
    return request.query_params.get("id", "")


async def _render(request: Request, page: otp_pages.OtpPage, *, notice: str | None = None,
                  error: str | None = None, locked: bool = False, status: int = 200,
                  error_field: str | None = None) -> Response:
    context = {"page": page, "csrf": csrf_for(request, f"otp:{page.token}"), "notice": notice, "error": error,
               "locked": locked, "path": PATH, "error_field": error_field}
    return render(request, "otp.html", context, status=status, headers=_headers(page))


async def show(request: Request) -> Response:
    try:
        page = await call(otp_pages.open_page, ctx_of(request), _token(request))
    except ParafeError as error:
        return _public_error(request, error)
    return await _render(request, page)


def _public_error(request: Request, error: ParafeError) -> Response:
    response = error_page(request, error)
    response.headers.update(_headers(None))
    return response


def _leave(page: otp_pages.OtpPage, outcome: str) -> Response | None:
    url = otp_pages.redirect_url(page.referer, outcome)
    if url is None:
        return None
    response = redirect(url)
    response.headers.update(_headers(page))
    return response


async def act(request: Request) -> Response:
    ctx = ctx_of(request)
    token = _token(request)
    try:
        page = await call(otp_pages.open_page, ctx, token)
        form = await request.form(max_files=0, max_fields=20)
        await check_post(request, f"otp:{page.token}", form)
    except ParafeError as error:
        return _public_error(request, error)
    action = str(form.get("action") or "")
    try:
        if action == "code":
            sent = await call(otp_pages.send_code, ctx, token)
            via = "par SMS au" if sent.channel == "sms" else "par courriel à"
            return await _render(request, page, notice=f"Un code de vérification a été envoyé {via} "
                                                       f"{sent.destination}. Il est valable 10 minutes.")
        if action == "signer":
            code = str(form.get("code") or "").strip()
            if not code.isdigit():
                raise ParafeError(E.BAD_REQUEST, reason="saisissez le code reçu (chiffres uniquement)")
            await call(otp_pages.sign, ctx, token, code)
            outcome = "SIGNED"
        elif action == "refuser":
            await call(otp_pages.refuse, ctx, token, str(form.get("motif") or ""))
            outcome = "REFUSED"
        else:
            raise ParafeError(E.BAD_REQUEST, reason="action inconnue")
    except ParafeError as error:
        page = await call(otp_pages.open_page, ctx, token)
        locked = error.error in (E.OTP_LOCKED, E.OTP_LINK_LOCKED)
        field = forms.field_of("otp-refus" if action == "refuser" else "otp-code", error)
        return await _render(request, page, error=error.message, locked=locked, status=error.http_status,
                             error_field=field if action in ("signer", "refuser") else None)
    except Exception:  # the signature itself failed: the signer may go back with return=ERROR
        page = await call(otp_pages.open_page, ctx, token)
        return await _render(request, page, error=E.INTERNAL.message, locked=True, status=500)
    page = await call(otp_pages.open_page, ctx, token)
    return _leave(page, outcome) or await _render(request, page)


async def leave(request: Request) -> Response:
    """The « Retourner sur le site » button: ``return=NONE`` (or ``ERROR`` after a failure); SIGNED / REFUSED
    when the documents are finished."""
    try:
        page = await call(otp_pages.open_page, ctx_of(request), _token(request))
    except ParafeError as error:
        return _public_error(request, error)
    outcome = page.outcome or ("ERROR" if request.query_params.get("etat") == "ERROR" else "NONE")
    return _leave(page, outcome) or await _render(request, page)


async def document(request: Request) -> Response:
    ctx = ctx_of(request)
    try:
        content = await call(otp_pages.content, ctx, _token(request), request.query_params.get("doc", ""))
    except ParafeError as error:
        return _public_error(request, error)
    response = content_response(ctx, content, inline=request.query_params.get("telecharger") != "1")
    response.headers["Referrer-Policy"] = "same-origin"
    return response


routes = [
    Route(PATH, show, methods=["GET"]),
    Route(PATH, act, methods=["POST"]),
    Route("/boucle-sms/retour", leave, methods=["GET"]),
    Route("/boucle-sms/document", document, methods=["GET"]),
]
