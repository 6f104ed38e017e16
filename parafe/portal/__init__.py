"""Parafe's web portal (French): dashboard, document pages, deposit, visa and signature, OTP pages, admin pages.

Server-rendered Jinja2 templates enhanced with htmx 4, pdf.js 6 for the viewer (both vendored under
``static/vendor``, no CDN). Authentication is the identity middleware's: client certificate, or Basic for
administrator accounts. The portal holds no business rule: every action calls :mod:`parafe.services`.
``create_portal_app(ctx)`` is mounted at ``/`` after the connectors (see :func:`parafe.app._connector_mounts`).
See ``docs/portal.md``.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from parafe.context import AppContext
from parafe.domain.errors import E, ParafeError

mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")


class _Static(StaticFiles):
    """Static files: cached for a year when the URL carries a content hash (``?v=``, see ``web.static_url``);
    revalidated otherwise (a module imported by another one, ``import … from "./results.js"``, has no hash)."""

    async def get_response(self, path: str, scope: Any) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            hashed = b"v=" in scope.get("query_string", b"")
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if hashed else "no-cache"
        return response


async def _not_found(request: Request, exc: Exception) -> Response:
    from parafe.portal.web import error_page

    status = getattr(exc, "status_code", 404)
    error = ParafeError(E.METHOD_NOT_ALLOWED if status == 405 else E.ROUTE_NOT_FOUND)
    return error_page(request, error)


async def _unexpected(request: Request, exc: Exception) -> Response:
    import logging

    from parafe.portal.web import error_page

    logging.getLogger(__name__).exception("portal error on %s", request.url.path)
    return error_page(request, ParafeError(E.INTERNAL, detail=repr(exc)))


def create_portal_app(ctx: AppContext) -> Any:
    """The portal ASGI application (with its security headers)."""
    from parafe.portal import absence, accessibility, admin, dashboard, documents, otp, passkeys, signing, visa
    from parafe.portal.download_links import routes as download_link_routes
    from parafe.portal.security import SecurityHeaders
    from parafe.portal.web import STATIC

    routes: list[Route | Mount] = [
        *dashboard.routes, *documents.routes, *signing.routes, *passkeys.routes, *otp.routes, *admin.routes,
        *visa.routes, *absence.routes,
        *download_link_routes,
        *accessibility.routes,
        Mount("/static", app=_Static(directory=str(STATIC)), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _not_found, Exception: _unexpected})
    app.state.ctx = ctx
    return SecurityHeaders(app)
