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

import email.utils
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from lxml import etree
from wsgidav import util
from wsgidav.dav_error import DAVError
from wsgidav.dav_provider import _DAVResource

from parafe.domain.errors import E, ParafeError
from parafe.services import webdav as svc

from . import errors
from .provider import InCircuit, InLabel, OutFile, ParafeDAVProvider, Receipt, _Collection, _Node, principal_of

Environ = dict[str, Any]
StartResponse = Callable[..., Any]

DAV = "DAV:"
_HREF_SAFE = "/!*'(),$-_|.~"
_LIVE_FILE = ("resourcetype", "displayname", "getcontentlength", "getcontenttype", "getetag", "getlastmodified")
_LIVE_COLLECTION = ("resourcetype", "displayname", "getlastmodified")
UNSUPPORTED = frozenset({"COPY", "MOVE", "PROPPATCH", "LOCK", "UNLOCK", "POST", "PATCH", "TRACE", "CONNECT",
                         "SEARCH", "REPORT", "ACL", "BIND", "UNBIND", "REBIND", "MKCALENDAR", "VERSION-CONTROL"})
ALLOW_ANY = "OPTIONS, HEAD, GET, PROPFIND, PUT, DELETE, MKCOL"


def _rfc1123(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


class PropfindRequest:
    """The parsed body of a PROPFIND: ``allprop`` (default), ``propname``, or a list of names."""

    def __init__(self, mode: str, names: list[tuple[str, str]]) -> None:
        self.mode = mode
        self.names = names  # (namespace, local name)


def parse_propfind(environ: Environ) -> PropfindRequest:
    try:
        root = util.parse_xml_body(environ, allow_empty=True)
    except DAVError:
        raise ParafeError(E.BAD_REQUEST, reason="corps PROPFIND invalide") from None
    if root is None:
        return PropfindRequest("allprop", [])
    if root.tag != "{DAV:}propfind":
        raise ParafeError(E.BAD_REQUEST, reason="corps PROPFIND invalide")
    mode: str | None = None
    names: list[tuple[str, str]] = []
    for node in root:
        if not isinstance(node.tag, str):
            continue
        if node.tag in ("{DAV:}allprop", "{DAV:}propname"):
            if mode is not None:
                raise ParafeError(E.BAD_REQUEST, reason="corps PROPFIND invalide")
            mode = "allprop" if node.tag == "{DAV:}allprop" else "propname"
        elif node.tag == "{DAV:}prop":
            if mode not in (None, "prop"):
                raise ParafeError(E.BAD_REQUEST, reason="corps PROPFIND invalide")
            mode = "prop"
            for prop in node:
                if isinstance(prop.tag, str):
                    qname = etree.QName(prop.tag)
                    names.append((qname.namespace or "", qname.localname))
    return PropfindRequest(mode or "allprop", names)


def _href(provider: ParafeDAVProvider, res: _DAVResource) -> str:
    path = res.path.rstrip("/") or ""
    if res.is_collection:
        path += "/"
    return quote(provider.mount_path + provider.share_path.rstrip("/") + path, safe=_HREF_SAFE)


def _live_values(res: _DAVResource) -> dict[str, str]:
    """Live properties of a resource, as XML fragments (values escaped)."""
    values: dict[str, str] = {"displayname": escape(util.get_uri_name(res.path) if res.path != "/" else "")}
    modified = res.modified() if isinstance(res, _Node) else None
    if modified is not None:
        values["getlastmodified"] = _rfc1123(modified)
    if res.is_collection:
        values["resourcetype"] = "<D:collection/>"
        return values
    values["resourcetype"] = ""
    length = res.get_content_length()
    if length is not None:
        values["getcontentlength"] = str(length)
    values["getcontenttype"] = escape(res.get_content_type() or "application/octet-stream")
    etag = res.get_etag()
    if etag is not None:
        values["getetag"] = escape(f'"{etag}"')
    return values


def _prop_xml(namespace: str, local: str, value: str | None) -> str:
    if namespace == DAV:
        return f"<D:{local}/>" if not value else f"<D:{local}>{value}</D:{local}>"
    return f'<X:{local} xmlns:X="{escape(namespace, {chr(34): "&quot;"})}"/>'


def _response_xml(href: str, found: list[str], missing: list[str]) -> str:
    parts = [f"<D:response><D:href>{escape(href)}</D:href>"]
    if found:
        parts.append(f"<D:propstat><D:prop>{''.join(found)}</D:prop><D:status>HTTP/1.1 200 OK</D:status>"
                     "</D:propstat>")
    if missing:
        parts.append(f"<D:propstat><D:prop>{''.join(missing)}</D:prop><D:status>HTTP/1.1 404 Not Found"
                     "</D:status></D:propstat>")
    parts.append("</D:response>")
    return "".join(parts)


def render_multistatus(provider: ParafeDAVProvider, resources: list[_DAVResource], request: PropfindRequest) -> bytes:
    out = ['<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">']
    for res in resources:
        values = _live_values(res)
        order = _LIVE_COLLECTION if res.is_collection else _LIVE_FILE
        href = _href(provider, res)
        if request.mode == "allprop":
            found = [_prop_xml(DAV, name, values[name]) for name in order if name in values]
            out.append(_response_xml(href, found, []))
        elif request.mode == "propname":
            found = [f"<D:{name}/>" for name in order if name in values]
            out.append(_response_xml(href, found, []))
        else:
            found, missing = [], []
            for namespace, local in request.names:
                if namespace == DAV and local in values:
                    found.append(_prop_xml(DAV, local, values[local]))
                else:
                    missing.append(_prop_xml(namespace, local, None))
            out.append(_response_xml(href, found, missing))
    out.append("</D:multistatus>\n")
    return "".join(out).encode("utf-8")


def do_propfind(provider: ParafeDAVProvider, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    depth = environ.get("HTTP_DEPTH", "infinity").lower()
    if depth not in ("0", "1", "infinity"):
        raise ParafeError(E.BAD_REQUEST, reason="en-tête Depth invalide")
    res = provider.get_resource_inst(environ["PATH_INFO"], environ)
    if res is None:
        raise ParafeError(E.ROUTE_NOT_FOUND)
    request = parse_propfind(environ)
    if depth == "infinity" and res.is_collection:
        body = (b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:propfind-finite-depth/>'
                b"</D:error>\n")
        start_response("403 Forbidden", [("Content-Type", "application/xml; charset=utf-8"),
                                         ("Content-Length", str(len(body)))])
        return [body]
    resources: list[_DAVResource] = [res]
    if depth != "0" and isinstance(res, _Collection):
        resources += res.children()
    body = render_multistatus(provider, resources, request)
    start_response("207 Multi-Status", [("Content-Type", "application/xml; charset=utf-8"),
                                        ("Content-Length", str(len(body))), ("Date", _rfc1123(time.time()))])
    return [body]


def _no_body(environ: Environ) -> None:
    if util.get_content_length(environ) != 0 or environ.get("HTTP_TRANSFER_ENCODING"):
        raise ParafeError(E.BAD_REQUEST, reason="corps de requête non pris en charge")


def _empty(start_response: StartResponse, status: str, headers: list[tuple[str, str]] | None = None
           ) -> Iterable[bytes]:
    start_response(status, [("Content-Length", "0"), *(headers or [])])
    return [b""]


def do_mkcol(provider: ParafeDAVProvider, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
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


def do_delete(provider: ParafeDAVProvider, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
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


def do_options(provider: ParafeDAVProvider, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    res = None if path == "*" else provider.get_resource_inst(path, environ)
    return _empty(start_response, "200 OK", [
        ("DAV", "1"), ("MS-Author-Via", "DAV"), ("Allow", ", ".join(allowed_methods(res)))])


def check_put_target(provider: ParafeDAVProvider, environ: Environ) -> None:
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


def handle(provider: ParafeDAVProvider, environ: Environ, start_response: StartResponse,
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
    kept = [(k, v) for k, v in headers if k.lower() in ("etag", "date")]
    if extra and status[:3] in ("201", "204"):
        status = "201 Created"
    start_response(status, [*kept, *extra, ("Content-Length", "0")])
    return [b""]
