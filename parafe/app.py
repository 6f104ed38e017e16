"""ASGI assembly: the connectors, the portal and the health check, behind the ClientIdentity middleware.

``create_app(ctx)`` is what ``parafe serve`` runs and what the tests start. Paths are those of the real
service: REST under ``/parapheur-ws/rest/v1``, SOAP under ``/parapheur-soap/soap/v1``, WebDAV under
``/partage/webdav/clients``, OSS under ``/oss``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from parafe.composition import install_jobs
from parafe.context import AppContext
from parafe.security.certcheck import CertificateVerifier
from parafe.security.identity import ClientIdentityMiddleware

log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    from sqlalchemy import text

    with ctx.db.read() as session:
        session.execute(text("SELECT 1"))
    return JSONResponse({"status": "ok"})


class CollapseSlashes:
    """Collapse repeated slashes in the path (DECISIONS D10: Pastell sends ``rest/v1//documents``)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and "//" in scope.get("path", ""):
            path = scope["path"]
            while "//" in path:
                path = path.replace("//", "/")
            scope = dict(scope, path=path)
            if scope.get("raw_path"):
                raw = scope["raw_path"]
                while b"//" in raw:
                    raw = raw.replace(b"//", b"/")
                scope["raw_path"] = raw
        await self.app(scope, receive, send)


HSTS_HEADER = (b"strict-transport-security", b"max-age=31536000")  # one year


class StrictTransportSecurity:
    """``Strict-Transport-Security`` on every answer sent over Parafe's own TLS (issue 18), errors included;
    never over plain HTTP (``--no-tls`` behind a proxy: the proxy's TLS end sets its own)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not (scope.get("extensions") or {}).get("tls"):
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers") or [] if h[0].lower() != HSTS_HEADER[0]]
                message = {**message, "headers": [*headers, HSTS_HEADER]}
            await send(message)

        await self.app(scope, receive, send_with_hsts)


def _connector_mounts(ctx: AppContext) -> list[Mount]:
    mounts: list[Mount] = []
    from parafe.connectors.rest import create_rest_app

    mounts.append(Mount("/parapheur-ws", app=create_rest_app(ctx)))
    from parafe.connectors.soap import create_soap_app

    mounts.append(Mount("/parapheur-soap", app=create_soap_app(ctx)))
    from parafe.connectors.webdav import create_webdav_app

    mounts.append(Mount("/partage/webdav", app=create_webdav_app(ctx)))  # serves /partage/webdav/clients[/…]
    from parafe.connectors.oss import create_oss_app

    mounts.append(Mount("/oss", app=create_oss_app(ctx)))
    from parafe.portal import create_portal_app

    mounts.append(Mount("/", app=create_portal_app(ctx)))  # the portal: keep it LAST (connectors take precedence)
    return mounts


def create_app(ctx: AppContext) -> Any:
    """The whole Parafe ASGI application."""
    from parafe.connectors.hooks import sms_receipt

    install_jobs()  # the outbox kinds this process runs (inline jobs, the embedded worker: issue 19)

    routes: list[Route | Mount] = [Route("/healthz", healthz, methods=["GET"]),
                                   Route("/hooks/sms/{provider}", sms_receipt, methods=["POST"])]
    routes += _connector_mounts(ctx)
    app = Starlette(routes=routes)
    app.state.ctx = ctx
    verifier = CertificateVerifier(
        ctx.settings.ca_bundle, ctx.settings.client_crl or ctx.settings.pki_dir / "crl.pem")
    from parafe.connectors.compliance import ComplianceRecording
    from parafe.connectors.rest import RejectControlCharacters
    from parafe.connectors.sandbox import SandboxMarker
    from parafe.connectors.webdav.errors import asgi_error_response

    return StrictTransportSecurity(CollapseSlashes(RejectControlCharacters(
        ClientIdentityMiddleware(SandboxMarker(ComplianceRecording(app, ctx), ctx), verifier,
                                 ctx.settings.trusted_proxy_set),
        shapes={"/partage/webdav": asgi_error_response})))  # WebDAV's shape: the x-fast-error headers
