"""Shared plumbing of the portal routes: templates, the caller, CSRF, error pages, formatting (Europe/Paris).

Routes stay thin: they read the request, call :mod:`parafe.services` in the thread pool (:func:`call`) and render
a template. A :class:`ParafeError` becomes the same French catalogue message as on every connector, shown in the
page with the error's HTTP status (:func:`error_page`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import lru_cache, wraps
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from parafe import __version__
from parafe.context import AppContext
from parafe.domain.errors import E, ParafeError
from parafe.domain.paris_time import FORMAT_PORTAL, paris_format
from parafe.domain.states import ACTOR_AUTOMATIC, ACTOR_OTP, State
from parafe.portal import forms, security
from parafe.security.identity import RequestIdentity
from parafe.services.access.auth import Principal, authenticate_async
from parafe.signing.names import readable_rfc4514

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
T = TypeVar("T")

# Success messages shown after an action (?ok=<key>), French, no personal data in the URL.
NOTICES = {
    "depose": "Document déposé.",
    "vise": "Visa enregistré : le document passe à l'étape suivante.",
    "rejete": "Document rejeté : le déposant est informé du motif.",
    "refuse": "Signature refusée : le déposant est informé du motif.",
    "signe": "Signature enregistrée.",
    "supprime": "Document supprimé.",
    "relance": "Traitement relancé.",
    "enregistre": "Modifications enregistrées.",
    "cree": "Création effectuée.",
    "certificat": "Certificat rattaché au compte.",
    "retire": "Élément retiré.",
    "cle": "Clé d'accès enregistrée.",
}

STATE_TONES = {
    State.SENT_FOR_VISA.value: "attente", State.SENT_FOR_SIGN.value: "attente",
    State.OTP_INFO_DEFINED.value: "attente", State.READY_FOR_METADATA.value: "attente",
    State.SIGNED.value: "succes", State.APPROVED.value: "succes", State.SIGNATURE_VALIDATED.value: "succes",
    State.OTP_SIGNED.value: "succes", State.OTP_VALIDATED.value: "succes", State.ACKNOWLEDGED.value: "succes",
    State.FILED.value: "fin", State.ARCHIVED.value: "fin",
    State.REFUSED.value: "erreur", State.DISAPPROVED.value: "erreur", State.SIGNATURE_REJECTED.value: "erreur",
    State.SEND_TO_FAST_FAILED.value: "erreur", State.FAST_PROCESSING_FAILED.value: "erreur",
    State.SEND_TO_HELIOS_FAILED.value: "erreur", State.STEP_FAILED.value: "erreur",
}

KIND_LABELS = {"pdf": "PDF", "pes": "PES (XML Hélios)", "office": "Bureautique", "xml": "XML"}

# Actors of automatic steps: their names stay on the wire (spec, D4: clients read « parapheur parapheur »), the
# portal says what they are.
ACTOR_LABELS = {ACTOR_AUTOMATIC: "Parafe (automatique)", ACTOR_OTP: "Signataire extérieur (code à usage unique)"}


# PAdES levels of the validation report (parafe.signing.verify), in plain French.
PADES_LEVELS = {
    "B-B": "signature électronique simple (sans horodatage)",
    "B-T": "signature horodatée",
    "B-LT": "signature horodatée, avec les preuves de validité des certificats",
    "B-LTA": "signature horodatée, avec les preuves de validité, archivable à long terme",
    "CMS": "signature PDF classique (non PAdES)",
    "DocTimeStamp": "horodatage du document",
}


def actor(name: str | None) -> str:
    """A history actor as shown in the portal."""
    return ACTOR_LABELS.get(name or "", name or "")


def paris(moment: datetime | str | None, fmt: str = FORMAT_PORTAL) -> str:
    """A UTC datetime (or an ISO 8601 text, e.g. a signing time of a validation report) shown in Europe/Paris
    (DECISIONS D16)."""
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return str(moment)
    return paris_format(moment, fmt)


_LONG_TOKEN = re.compile(r"\S{16,}")
_SEPARATORS = re.compile(r"([@._/-])")


def breakable(text: str | None) -> Markup:
    """``text`` escaped, with a line-break opportunity (``<wbr>``) after the separators (``@ . _ / -``) of its
    long tokens (e-mail addresses, file names): they break there on a narrow screen, and words never break
    inside (no ``overflow-wrap: anywhere``)."""
    if not text:
        return Markup("")

    def split(match: re.Match[str]) -> str:
        return _SEPARATORS.sub(lambda m: m.group(1) + "\x00", match.group(0))

    marked = _LONG_TOKEN.sub(split, str(text))
    return Markup("<wbr>").join(escape(part) for part in marked.split("\x00"))


def size(value: int | None) -> str:
    """A byte count in French units (« 1,2 Mo »)."""
    if value is None:
        return ""
    units = ("octets", "Ko", "Mo", "Go")
    number = float(value)
    for unit in units:
        if number < 1024 or unit == units[-1]:
            text = f"{number:.0f}" if unit == "octets" else f"{number:.1f}".replace(".", ",")
            return f"{text} {unit}"
        number /= 1024
    return str(value)


@lru_cache(maxsize=256)
def _static_version(path: str) -> str:
    file = (STATIC / path).resolve()
    if STATIC not in file.parents or not file.is_file():
        return __version__
    return hashlib.sha256(file.read_bytes()).hexdigest()[:12]


def static_url(path: str) -> str:
    """URL of a static file with a content hash (long-lived caching, busted on change)."""
    return f"/static/{path}?v={_static_version(path)}"


def query(base: str, **params: Any) -> str:
    """``base`` with the non-empty ``params`` as query string."""
    clean = {k: v for k, v in params.items() if v not in (None, "", False)}
    return f"{base}?{urlencode(clean)}" if clean else base


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["paris"] = paris
    env.filters["taille"] = size
    env.filters["acteur"] = actor
    env.filters["coupure"] = breakable
    env.filters["nom_certificat"] = readable_rfc4514
    env.globals["static"] = static_url
    env.globals["query"] = query
    env.globals["STATE_TONES"] = STATE_TONES
    env.globals["KIND_LABELS"] = KIND_LABELS
    env.globals["PADES_LEVELS"] = PADES_LEVELS
    env.globals["version"] = __version__
    return env


ENV = _environment()


def ctx_of(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking service function in the thread pool."""
    return await run_in_threadpool(fn, *args, **kwargs)


def identity_of(request: Request) -> RequestIdentity:
    identity = request.scope.get("state", {}).get("identity")
    return identity if isinstance(identity, RequestIdentity) else RequestIdentity()


async def principal_of(request: Request) -> Principal:
    """The authenticated caller (client certificate, or Basic for admin accounts); raises the catalogue's
    authentication errors (HTTP 401)."""
    cached = request.scope.get("parafe.principal")
    if isinstance(cached, Principal):
        return cached
    principal = await authenticate_async(ctx_of(request), identity_of(request))
    request.scope["parafe.principal"] = principal
    from parafe.services.portal.lists import may_deposit

    request.scope["parafe.may_deposit"] = await call(may_deposit, ctx_of(request), principal)
    return principal


def csrf_subject(principal: Principal) -> str:
    if principal.method == "certificate" and principal.fingerprint:
        return f"cert:{principal.fingerprint}"
    return f"{principal.method}:{principal.email}"


def secret(request: Request) -> bytes:
    return security.portal_secret(ctx_of(request).settings.resolved_home)


def csrf_for(request: Request, subject: str) -> str:
    return security.csrf_token(secret(request), subject)


async def check_post(request: Request, subject: str, form: FormData | dict[str, Any] | None = None) -> None:
    """The CSRF rules of :mod:`parafe.portal.security` for a POST of ``subject``."""
    security.check_origin(request.headers, request.headers.get("host"))
    token = request.headers.get("x-csrf-token")
    if token is None and form is not None:
        value = form.get("csrf")
        token = value if isinstance(value, str) else None
    security.check_csrf(secret(request), subject, token)


async def read_form(request: Request, principal: Principal) -> FormData:
    """An url-encoded form, after the CSRF check."""
    form = await request.form(max_files=0, max_fields=500)
    await check_post(request, csrf_subject(principal), form)
    return form


def render(request: Request, template: str, context: dict[str, Any], *, status: int = 200,
           principal: Principal | None = None, headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render ``template`` with the common context (caller, CSRF token, notices)."""
    full: dict[str, Any] = {"request": request, "user": principal, "path": request.url.path}
    if principal is not None:
        full["csrf"] = csrf_for(request, csrf_subject(principal))
        full["is_admin"] = any(a.is_admin for a in principal.accounts)
        full["display_name"] = principal.accounts[0].full_name if principal.accounts else principal.email
        full["may_deposit"] = request.scope.get("parafe.may_deposit", True)
    notice = request.query_params.get("ok")
    if notice in NOTICES:
        full["notice"] = NOTICES[notice]
    full["accessibility"] = accessibility_status(ctx_of(request).settings.accessibility_status)
    from parafe.services.admin.sandbox import shown_in_portal  # issue 21: the sandbox banner

    full["sandbox"] = shown_in_portal(ctx_of(request), [a.subscriber_id for a in principal.accounts]
                                      if principal is not None else [])
    full.update(context)
    full["field_errors"] = forms.field_errors(full.get("error"), full.get("error_field"))
    html = ENV.get_template(template).render(full)
    return HTMLResponse(html, status_code=status, headers=headers)


ACCESSIBILITY_STATUS = {"non": "non conforme", "partiellement": "partiellement conforme",
                        "totalement": "totalement conforme"}


def accessibility_status(value: str) -> str:
    """« non conforme » / « partiellement conforme » / « totalement conforme » (RGAA statement wording)."""
    return ACCESSIBILITY_STATUS.get(value, ACCESSIBILITY_STATUS["non"])


def error_page(request: Request, error: ParafeError, principal: Principal | None = None) -> HTMLResponse:
    """A catalogue error as a page; 401 explains how to present a certificate (or log in as an admin)."""
    template = "auth.html" if error.http_status == 401 else "error.html"
    return render(request, template, {"error": error.message, "code": error.code}, status=error.http_status,
                  principal=principal)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


Handler = Callable[[Request], Awaitable[Response]]


def page(handler: Callable[[Request, Principal], Awaitable[Response]]) -> Handler:
    """Decorator: authenticate the caller, then run ``handler``; catalogue errors become error pages."""

    @wraps(handler)
    async def wrapped(request: Request) -> Response:
        principal: Principal | None = None
        try:
            principal = await principal_of(request)
            return await handler(request, principal)
        except ParafeError as error:
            return error_page(request, error, principal)

    return wrapped


def int_param(value: str | None, default: int = 1) -> int:
    try:
        return max(1, int(value or default))
    except ValueError:
        return default


def not_found() -> ParafeError:
    return ParafeError(E.ROUTE_NOT_FOUND)
