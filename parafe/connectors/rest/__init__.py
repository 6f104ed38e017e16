"""REST connector (spec §2.6) under ``/parapheur-ws/rest/v1``, with its OpenAPI document and interactive
documentation under ``/parapheur-ws/`` (``openapi.json``, ``docs``).

The 21 endpoints of API-REFERENCE §4.2 are split by what they hold: ``uploads`` (R2, R3), ``documents`` (R6,
R9, R16), ``downloads`` (R1, R7, R8), ``metadata`` (R4, R5), ``returns`` (R10–R15), ``otp`` (R17, R18),
``users`` (R19, R21) and ``search`` (R20). Every route is a thin adapter to :mod:`parafe.services`; errors
are the JSON shape of DECISIONS D2 (``errors``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from parafe.context import AppContext
from parafe.domain.errors import ParafeError

from . import documents, downloads, errors, integrators, metadata, otp, returns, search, uploads, users

DESCRIPTION = (
    "API REST de Parafe, compatible avec FAST-Parapheur (document « Interfaçage logiciel avec FAST-Parapheur "
    "v3.4 », §2.6). Toutes les adresses sont relatives à `/parapheur-ws/rest/v1`. Authentification par "
    "certificat client (TLS) ; `Authorization: Basic` pour les méthodes d'administration. Les dépôts utilisent "
    "`multipart/form-data`. Les erreurs ont toujours la forme `{generation, developerMessage, "
    "userFriendlyMessage, errorCode}` avec un statut HTTP adapté (catalogue : docs/errors.md).")

STATIC = Path(__file__).parent / "static"

TAGS = [
    {"name": "Dépôt", "description": "Dépôt de documents (upload, circuit à la volée)."},
    {"name": "Suivi des documents", "description": "Historique, suppression, message de refus."},
    {"name": "Téléchargement", "description": "Document signé, fiche de circulation, métadonnées."},
    {"name": "Métadonnées", "description": "Définition des métadonnées et des informations OTP."},
    {"name": "Retours", "description": "Acquittements Hélios, PES Retour, fichiers Chorus."},
    {"name": "OTP", "description": "Signature par code à usage unique (SMS ou e-mail)."},
    {"name": "Administration des utilisateurs", "description": "Export et synchronisation des utilisateurs."},
    {"name": "Recherche", "description": "Recherche de documents."},
    {"name": "Intégrateurs", "description": "Rapport de conformité du client, circuits (extensions Parafe)."},
]


class RejectControlCharacters:
    """Refuse paths and query strings holding control characters (``%00`` …) before any route sees them: they
    can never be valid identifiers and some databases refuse them.

    The refusal has the REST shape, except under a path prefix of ``shapes``, answered by its own error response
    (the whole application passes WebDAV's, which this connector does not know)."""

    def __init__(self, app: Any, shapes: Mapping[str, Callable[[ParafeError], Response]] | None = None) -> None:
        self.app = app
        self.shapes = dict(shapes or {})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            from urllib.parse import unquote_to_bytes

            raw = scope.get("path", "").encode("utf-8", "surrogateescape") + b"?" + unquote_to_bytes(
                scope.get("query_string", b"").replace(b"+", b" "))
            if any(b < 0x20 or b == 0x7F for b in raw):
                from parafe.domain.errors import E

                exc = ParafeError(E.BAD_CHARACTERS, detail="control character in the path or the query string")
                path = scope.get("path", "")
                shape = next((s for prefix, s in self.shapes.items() if path.startswith(prefix)),
                             errors.error_response)
                response = shape(exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_rest_app(ctx: AppContext) -> Any:
    app = FastAPI(title="Parafe — API REST", version="v1", description=DESCRIPTION, docs_url=None,
                  openapi_url="/openapi.json", redoc_url=None, openapi_tags=TAGS)
    app.state.ctx = ctx
    # otp first: /documents/v2/otp/... before the generic /documents/v2/{id}/... routes (§4.1).
    for module in (otp, uploads, metadata, documents, downloads, returns, users, search, integrators):
        app.include_router(module.router, prefix="/rest/v1")
    app.add_exception_handler(ParafeError, errors.parafe_error_handler)
    app.add_exception_handler(RequestValidationError, errors.validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, errors.http_error_handler)
    app.add_exception_handler(Exception, errors.unexpected_error_handler)

    # Interactive documentation with a vendored Swagger UI (no CDN: parapheurs often run offline).
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json", title="Parafe — API REST (documentation interactive)",
            swagger_js_url=f"{root}/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}/static/swagger-ui/favicon-32x32.png")

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '').rstrip('/')}/docs")

    return RejectControlCharacters(app)
