"""Request handling of the WebDAV connector around WsgiDAV's request server.

- PROPFIND (Depth 0 and 1) is rendered here from the resources' listing in one pass of string building, instead
  of WsgiDAV's per-resource property machinery (10,000 entries: one query, a few milliseconds of Python), with
  the same XML (``allprop``, ``propname`` and named properties, unknown ones in a 404 ``propstat``). Depth
  ``infinity`` is refused with ``403`` + ``<D:propfind-finite-depth/>`` (RFC 4918 §9.1).
- MKCOL (a label folder in ``in/<circuit>``), DELETE (a receipt, a return, an empty label folder) and OPTIONS
  are answered here; COPY, MOVE, PROPPATCH, LOCK, UNLOCK and POST are not offered by a drop folder (405).
- PUT is WsgiDAV's (consume in ``end_write``); its target is checked first (subscriber, circuit, agent role:
  the deposit service's own checks) so that a refused PUT is answered before its body is read. The headers of
  an accepted PUT (``x-fast-docid``) are added to WsgiDAV's response, whose status is always ``201``.
- GET and HEAD are WsgiDAV's (ranges, conditional requests).

Every error leaves as :func:`parafe.connectors.webdav.errors.respond` renders it.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from wsgidav import util
from wsgidav.dav_error import DAVError
from wsgidav.dav_provider import _DAVResource

from parafe.context import AppContext
from parafe.domain.errors import E, ParafeError
from parafe.security.asgi_types import Environ, StartResponse
from parafe.services.webdav import folders as svc

from . import errors, propfind
from .resources import Collection, File, InCircuit, InLabel, OutFile, Receipt, principal_of

log = logging.getLogger(__name__)


DAV = "DAV:"
_HREF_SAFE = "/!*'(),$-_|.~"
_LIVE_FILE = ("resourcetype", "displayname", "getcontentlength", "getcontenttype", "getetag", "getlastmodified")
_LIVE_COLLECTION = ("resourcetype", "displayname", "getlastmodified")
UNSUPPORTED = frozenset({"COPY", "MOVE", "PROPPATCH", "LOCK", "UNLOCK", "POST", "PATCH", "TRACE", "CONNECT",
                         "SEARCH", "REPORT", "ACL", "BIND", "UNBIND", "REBIND", "MKCALENDAR", "VERSION-CONTROL"})
ALLOW_ANY = "OPTIONS, HEAD, GET, PROPFIND, PUT, DELETE, MKCOL"
GZIP_FROM = 16 * 1024  # PROPFIND bodies larger than this are gzipped for clients that accept it


class Tree(Protocol):
    """What the handlers use of the provider (:class:`parafe.connectors.webdav.provider.ParafeDAVProvider`, which
    is given :func:`handle` at construction)."""

    ctx: AppContext
    mount_path: str
    share_path: str

    def get_resource_inst(self, path: str, environ: Environ) -> _DAVResource | None: ...


def _href(provider: Tree, res: _DAVResource) -> str:
    path = res.path.rstrip("/")
    if res.is_collection:
        path += "/"
    return propfind.href_of(provider.mount_path + provider.share_path.rstrip("/") + path)


def do_propfind(provider: Tree, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    depth = environ.get("HTTP_DEPTH", "infinity").lower()
    if depth not in ("0", "1", "infinity"):
        raise ParafeError(E.BAD_REQUEST, reason="en-tête Depth invalide")
    res = provider.get_resource_inst(environ["PATH_INFO"], environ)
    if res is None:
        raise ParafeError(E.ROUTE_NOT_FOUND)
    request = propfind.parse(environ)
    if depth == "infinity" and res.is_collection:
        body = (b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:propfind-finite-depth/>'
                b"</D:error>\n")
        start_response("403 Forbidden", [("Content-Type", "application/xml; charset=utf-8"),
                                         ("Content-Length", str(len(body)))])
        return [body]
    folders: list[tuple[str, str, float | None]] = []
    files: list[tuple[str, svc.FileEntry]] = []
    if isinstance(res, Collection):
        href = _href(provider, res)
        folders.append((href, util.get_uri_name(res.path) if res.path.strip("/") else "", res.modified()))
        if depth != "0":
            subfolders, entries = res.listing()
            folders += [(_href(provider, f), util.get_uri_name(f.path), f.modified()) for f in subfolders]
            files += [(href + propfind.href_of(e.name), e) for e in entries]
    elif isinstance(res, File):
        files.append((_href(provider, res), res.entry))
    else:  # pragma: no cover - every resource of the tree is one of the above
        raise ParafeError(E.ROUTE_NOT_FOUND)
    body = propfind.multistatus(request, folders, files)
    headers = [("Content-Type", "application/xml; charset=utf-8")]
    if len(body) > GZIP_FROM and accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", "")):
        # a listing of 10,000 returns is 4 MB of very repetitive XML: ~100 KB gzipped, in ~10 ms
        packer = zlib.compressobj(1, zlib.DEFLATED, 31)
        body = packer.compress(body) + packer.flush()
        headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
    start_response("207 Multi-Status", [*headers, ("Content-Length", str(len(body)))])
    return [body]


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` value accepts gzip (``gzip;q=0`` does not)."""
    for item in header.lower().split(","):
        name, _, params = item.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            q = params.strip()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False


def _no_body(environ: Environ) -> None:
    if util.get_content_length(environ) != 0 or environ.get("HTTP_TRANSFER_ENCODING"):
        raise ParafeError(E.BAD_REQUEST, reason="corps de requête non pris en charge")


def _empty(start_response: StartResponse, status: str, headers: list[tuple[str, str]] | None = None
           ) -> Iterable[bytes]:
    start_response(status, [("Content-Length", "0"), *(headers or [])])
    return [b""]


def do_mkcol(provider: Tree, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    try:
        _no_body(environ)
    except ParafeError as exc:
        return errors.respond(environ, start_response, exc, status=415)
    if provider.get_resource_inst(path, environ) is not None:
        return errors.respond(environ, start_response, ParafeError(E.METHOD_NOT_ALLOWED,
                                                                   detail="the folder exists"), status=405)
    parent_path = util.get_uri_parent(path.rstrip("/"))
    parent = provider.get_resource_inst(parent_path, environ) if parent_path else None
    if parent is None:
        return errors.respond(environ, start_response, ParafeError(
            E.BAD_REQUEST, reason="le dossier parent n'existe pas"), status=409)
    if not isinstance(parent, InCircuit) or isinstance(parent, InLabel):
        raise ParafeError(E.NO_PERMISSION, detail="folders are created only as labels of in/<circuit>")
    parent.create_collection(util.get_uri_name(path))
    return _empty(start_response, "201 Created")


def do_delete(provider: Tree, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    _no_body(environ)
    res = provider.get_resource_inst(environ["PATH_INFO"], environ)
    if res is None:
        raise ParafeError(E.ROUTE_NOT_FOUND)
    if isinstance(res, OutFile | Receipt | InLabel):
        res.delete()
        return _empty(start_response, "204 No Content")
    raise ParafeError(E.NO_PERMISSION, detail="this resource cannot be deleted")


def allowed_methods(res: _DAVResource | None) -> list[str]:
    if res is None:
        return ["OPTIONS", "PUT", "MKCOL"]
    if isinstance(res, InLabel):
        return ["OPTIONS", "HEAD", "GET", "PROPFIND", "PUT", "DELETE"]
    if isinstance(res, InCircuit):
        return ["OPTIONS", "HEAD", "GET", "PROPFIND", "PUT", "MKCOL"]
    if isinstance(res, Receipt | OutFile):
        return ["OPTIONS", "HEAD", "GET", "PROPFIND", "DELETE"]
    return ["OPTIONS", "HEAD", "GET", "PROPFIND"]


def do_options(provider: Tree, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    res = None if path == "*" else provider.get_resource_inst(path, environ)
    return _empty(start_response, "200 OK", [
        ("DAV", "1"), ("MS-Author-Via", "DAV"), ("Allow", ", ".join(allowed_methods(res)))])


def check_put_target(provider: Tree, environ: Environ) -> None:
    """Refuse a PUT outside ``<SIREN>/in/<circuit>[/<label>]/<name>`` before its body is read, with the errors
    of the deposit service (foreign or unknown SIREN, unknown circuit, no agent role)."""
    segments = [s for s in environ["PATH_INFO"].strip("/").split("/") if s]
    if environ["PATH_INFO"].endswith("/") or len(segments) < 2:
        raise ParafeError(E.METHOD_NOT_ALLOWED, detail="PUT needs a file name")
    if segments[1] == svc.OUT:
        raise ParafeError(E.NO_PERMISSION, detail="out/ is read-only")
    if segments[1] != svc.IN or len(segments) not in (4, 5):
        if len(segments) in (2, 3) and segments[1] == svc.IN:
            raise ParafeError(E.METHOD_NOT_ALLOWED, detail="PUT needs in/<circuit>[/<label>]/<name>")
        raise ParafeError(E.ROUTE_NOT_FOUND)
    parent = provider.get_resource_inst("/" + "/".join(segments[:-1]), environ)
    if isinstance(parent, InCircuit) and parent.circuit.can_deposit:
        return
    # not visible or not an agent: the deposit service's own checks give the exact error
    svc.check_deposit_target(provider.ctx, principal_of(environ), segments[0], svc.nfc(segments[2]))
    raise ParafeError(E.NO_PERMISSION)  # pragma: no cover - the checks above refuse first


def handle(provider: Tree, environ: Environ, start_response: StartResponse,
           default_handler: Callable[..., Iterable[bytes]]) -> Iterable[bytes]:
    """``DAVProvider.custom_request_handler`` of the connector."""
    method = environ["REQUEST_METHOD"]
    try:
        if method == "PROPFIND":
            return do_propfind(provider, environ, start_response)
        if method == "MKCOL":
            return do_mkcol(provider, environ, start_response)
        if method == "DELETE":
            return do_delete(provider, environ, start_response)
        if method == "OPTIONS":
            return do_options(provider, environ, start_response)
        if method not in ("GET", "HEAD", "PUT"):
            res = provider.get_resource_inst(environ["PATH_INFO"], environ)
            allow = ", ".join(allowed_methods(res))

            def _with_allow(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                return start_response(status, [*headers, ("Allow", allow)], exc_info)

            return errors.respond(environ, _with_allow, ParafeError(E.METHOD_NOT_ALLOWED), status=405)
        if method == "PUT":
            check_put_target(provider, environ)
            return _put(environ, start_response, default_handler)
        # WsgiDAV's GET is a generator (errors would surface after the response started): resolve first.
        res = provider.get_resource_inst(environ["PATH_INFO"], environ)
        if res is None:
            raise ParafeError(E.ROUTE_NOT_FOUND)
        if res.is_collection:
            raise ParafeError(E.NO_PERMISSION, detail="a folder is listed with PROPFIND, not GET")
        return default_handler(environ, start_response)
    except ParafeError as exc:
        return errors.respond(environ, start_response, exc)
    except DAVError as dav:
        mapped, status = errors.from_dav_error(dav)
        return errors.respond(environ, start_response, mapped, status=status)
    except Exception:
        log.exception("webdav: unexpected error on %s %s", method, environ.get("PATH_INFO"))
        return errors.respond(environ, start_response, ParafeError(E.INTERNAL))


def _put(environ: Environ, start_response: StartResponse, default_handler: Callable[..., Iterable[bytes]]
         ) -> Iterable[bytes]:
    """WsgiDAV's PUT, answered ``201`` with ``ETag`` and ``x-fast-docid`` and no body."""
    captured: list[tuple[str, list[tuple[str, str]]]] = []

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        captured.append((status, headers))
        return lambda _data: None

    result = default_handler(environ, capture)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    status, headers = captured[-1]
    extra = environ.get("parafe.put_headers") or []
    kept = [(k, v) for k, v in headers if k.lower() == "etag"]
    if extra and status[:3] in ("201", "204"):
        status = "201 Created"
    start_response(status, [*kept, *extra, ("Content-Length", "0")])
    return [b""]
