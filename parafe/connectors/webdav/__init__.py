"""WebDAV connector (spec §4, DECISIONS D6) under ``/partage/webdav/clients``: WsgiDAV 4 with our provider,
mounted in the ASGI application through a2wsgi.

Request path: ASGI (identity middleware: ``scope["state"]["identity"]``) → a2wsgi thread pool → the gate
(:class:`WebDavGate`: raw path checks, then the caller's principal from the client certificate, or Basic for
admins) → WsgiDAV (no authenticator, lock or property manager of its own) → our provider's
``custom_request_handler`` (:mod:`.handlers`) and resources (:mod:`.provider`). The logic lives in
:mod:`parafe.services.webdav.folders` and :mod:`parafe.services.documents.deposit`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from a2wsgi import WSGIMiddleware
from wsgidav.error_printer import ErrorPrinter
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from parafe.context import AppContext
from parafe.domain.errors import E, ParafeError
from parafe.security.asgi_types import StartResponse
from parafe.security.identity import RequestIdentity
from parafe.services.access.auth import authenticate

from . import errors
from .handlers import ALLOW_ANY, UNSUPPORTED, handle
from .paths import check_raw_path
from .provider import ParafeDAVProvider

log = logging.getLogger(__name__)

MOUNT = "/partage/webdav/clients"
# a2wsgi runs WSGI in a thread pool (10 threads by default): size it for concurrent clients; the provider's
# database calls are synchronous.
WORKERS = 32
BLOCK_SIZE = 256 * 1024



class WebDavGate:
    """WSGI entry: refuses bad raw paths and unauthenticated callers, then hands over to WsgiDAV."""

    def __init__(self, ctx: AppContext, dav: Callable[..., Iterable[bytes]], prefix: str = "") -> None:
        self.ctx = ctx
        self.dav = dav
        self.prefix = prefix.rstrip("/")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        scope = environ.get("asgi.scope") or {}
        method = environ.get("REQUEST_METHOD", "GET")
        if self.prefix:  # mounted at the parent: serve only <prefix>, with or without its trailing slash
            path_info = environ.get("PATH_INFO", "")
            if path_info != self.prefix and not path_info.startswith(self.prefix + "/"):
                return errors.respond(environ, start_response, ParafeError(E.ROUTE_NOT_FOUND))
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.prefix
            environ["PATH_INFO"] = path_info[len(self.prefix):] or "/"
        raw_path = scope.get("raw_path") or environ.get("PATH_INFO", "/").encode("latin-1")
        try:
            checked = check_raw_path(raw_path, method)
            identity = (scope.get("state") or {}).get("identity") or RequestIdentity()
            principal = authenticate(self.ctx, identity)
        except ParafeError as exc:
            return errors.respond(environ, start_response, exc)
        except Exception:
            log.exception("webdav: could not authenticate the request")
            return errors.respond(environ, start_response, ParafeError(E.INTERNAL))
        if method in UNSUPPORTED:
            return _not_offered(environ, start_response, method)
        environ["parafe.principal"] = principal
        environ["parafe.raw_name"] = checked.raw_last_segment
        environ["wsgidav.auth.user_name"] = principal.email
        environ["wsgidav.auth.realm"] = "parafe"
        return self.dav(environ, start_response)


def _not_offered(environ: dict[str, Any], start_response: StartResponse, method: str) -> Iterable[bytes]:
    """Methods a drop folder does not offer (WsgiDAV would answer some of them itself, without our shape)."""

    def with_allow(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, [*headers, ("Allow", ALLOW_ANY)], exc_info)

    exc = ParafeError(E.METHOD_NOT_ALLOWED, detail=f"{method} is not offered by a drop folder")
    return errors.respond(environ, with_allow, exc, status=405)


def create_webdav_wsgi(ctx: AppContext, mount_path: str = MOUNT, prefix: str = "") -> WebDavGate:
    """WsgiDAV behind the gate; ``prefix`` is what remains of ``mount_path`` below the ASGI mount point."""
    config: dict[str, Any] = {
        "provider_mapping": {"/": ParafeDAVProvider(ctx, handle)},
        "mount_path": mount_path,
        "middleware_stack": [ErrorPrinter, RequestResolver],
        "lock_storage": None,
        "property_manager": None,
        "http_authenticator": {"domain_controller": None, "accept_basic": False, "accept_digest": False},
        "dir_browser": {"enable": False},
        "block_size": BLOCK_SIZE,
        "verbose": 1,
        "logging": {"enable": False},
        "suppress_version_info": True,
    }
    return WebDavGate(ctx, WsgiDAVApp(config), prefix)


def create_webdav_app(ctx: AppContext, mount_path: str = MOUNT, asgi_mount: str = "/partage/webdav") -> Any:
    """The ASGI application to mount at ``asgi_mount`` (the parent of ``mount_path``, so that the root of the
    tree answers with and without its trailing slash: a Starlette ``Mount`` only matches ``<path>/…``)."""
    prefix = mount_path[len(asgi_mount):] if mount_path.startswith(asgi_mount) else ""
    return WSGIMiddleware(create_webdav_wsgi(ctx, mount_path, prefix), workers=WORKERS)  # type: ignore[arg-type]
