"""The WsgiDAV provider of the drop folders: maps a path to its resource (:mod:`parafe.connectors.webdav.resources`),
resolved once per request, and hands every request to the connector's handler
(:mod:`parafe.connectors.webdav.handlers`, passed in at construction).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from wsgidav.dav_provider import DAVProvider, _DAVResource

from parafe.context import AppContext
from parafe.services.access.auth import Account
from parafe.services.webdav import folders as svc
from parafe.services.webdav import out_folders

from .resources import (
    Environ,
    FlowFolder,
    InCircuit,
    InLabel,
    InRoot,
    OutCircuit,
    OutFile,
    OutLabel,
    OutRoot,
    Receipt,
    RootCollection,
    SubscriberCollection,
    child,
    principal_of,
)

RequestHandler = Callable[["ParafeDAVProvider", Environ, Any, Any], Iterable[bytes]]


class ParafeDAVProvider(DAVProvider):
    """Maps paths to the resources of :mod:`parafe.connectors.webdav.resources` (unknown and foreign paths: None,
    i.e. 404); every request goes through ``handler`` (:func:`parafe.connectors.webdav.handlers.handle`), given
    at construction, with WsgiDAV's own handling as its fallback."""

    def __init__(self, ctx: AppContext, handler: RequestHandler) -> None:
        super().__init__()
        self.ctx = ctx
        self.handler = handler

    def is_readonly(self) -> bool:
        return False

    def custom_request_handler(self, environ: Environ, start_response: Any, default_handler: Any) -> Any:
        return self.handler(self, environ, start_response, default_handler)

    def _circuit(self, environ: Environ, account: Account, key: str) -> svc.CircuitView | None:
        cache: dict[tuple[int, str], svc.CircuitView | None] = environ.setdefault("parafe.circuits", {})
        token = (account.user_id, key)
        if token not in cache:
            cache[token] = svc.circuit_view(self.ctx, account, key)
        return cache[token]

    def get_resource_inst(self, path: str, environ: Environ) -> _DAVResource | None:
        """The resource at ``path`` (resolved once per request: WsgiDAV and the handlers may both ask)."""
        cache: dict[str, _DAVResource | None] = environ.setdefault("parafe.resources", {})
        key = "/" + path.strip("/")
        if key not in cache:
            cache[key] = self._resolve(path, environ)
        return cache[key]

    def _resolve(self, path: str, environ: Environ) -> _DAVResource | None:
        segments = [svc.nfc(s) for s in path.strip("/").split("/") if s]
        ctx = self.ctx
        root = RootCollection("/", environ, ctx)
        if not segments:
            return root
        principal = principal_of(environ)
        account = principal.account_for(segments[0])
        if account is None:
            return None
        base = "/" + segments[0]
        if len(segments) == 1:
            return SubscriberCollection(base, environ, ctx, account)
        area, rest = segments[1], segments[2:]
        if area == svc.IN:
            return self._in(environ, account, base + "/in", rest)
        if area == svc.OUT:
            return self._out(environ, account, base + "/out", rest)
        return None

    def _in(self, environ: Environ, account: Account, base: str, rest: list[str]) -> _DAVResource | None:
        ctx = self.ctx
        if not rest:
            return InRoot(base, environ, ctx, account)
        circuit = self._circuit(environ, account, rest[0])
        if circuit is None:
            return None
        circuit_path = child(base, circuit.key)
        top = InCircuit(circuit_path, environ, ctx, account, circuit)
        if len(rest) == 1:
            return top
        if self._is_put_target(environ, base, rest):
            # the file a PUT creates: a receipt with its name belongs to a live document with the same triplet,
            # which the deposit service refuses as « Doublon » anyway (D6), so no look-up is needed
            return None
        if len(rest) == 2:
            name = rest[1]
            if self._is_put_parent(environ, child(circuit_path, name)):
                return InLabel(child(circuit_path, name), environ, ctx, account, circuit, name)
            entry = svc.receipt(ctx, circuit, "", name)
            if entry is not None:
                return Receipt(child(circuit_path, name), environ, ctx, top, entry)
            if svc.label_exists(ctx, circuit, name):
                return InLabel(child(circuit_path, name), environ, ctx, account, circuit, name)
            return None
        if len(rest) == 3:
            label_folder, name = rest[1], rest[2]
            folder = InLabel(child(circuit_path, label_folder), environ, ctx, account, circuit, label_folder)
            entry = svc.receipt(ctx, circuit, label_folder, name)
            if entry is None:
                return None
            return Receipt(child(folder.path, name), environ, ctx, folder, entry)
        return None

    @staticmethod
    def _is_put_target(environ: Environ, base: str, rest: list[str]) -> bool:
        if environ.get("REQUEST_METHOD") != "PUT" or len(rest) not in (2, 3):
            return False
        target = [svc.nfc(s) for s in environ.get("PATH_INFO", "").strip("/").split("/") if s]
        return "/" + "/".join(target) == base + "/" + "/".join(rest)

    @staticmethod
    def _is_put_parent(environ: Environ, path: str) -> bool:
        """During a PUT, its parent label folder exists even before the label does (D6)."""
        if environ.get("REQUEST_METHOD") != "PUT":
            return False
        target = [svc.nfc(s) for s in environ.get("PATH_INFO", "").strip("/").split("/") if s]
        return "/" + "/".join(target[:-1]) == path

    def _out(self, environ: Environ, account: Account, base: str, rest: list[str]) -> _DAVResource | None:
        ctx = self.ctx
        if not rest:
            return OutRoot(base, environ, ctx, account)
        flow = svc.flow_folder(rest[0])
        if flow is not None:
            if not svc.may_fetch_flows(ctx, account):
                return None
            folder = FlowFolder(child(base, flow), environ, ctx, account, flow)
            if len(rest) == 1:
                return folder
            if len(rest) == 2:
                entry = out_folders.out_entry(ctx, folder.folder, rest[1])
                return OutFile(child(folder.path, entry.name), environ, ctx, folder.folder, entry) if entry else None
            return None
        circuit = self._circuit(environ, account, rest[0])
        if circuit is None:
            return None
        top = OutCircuit(child(base, circuit.key), environ, ctx, account, circuit)
        if len(rest) == 1:
            return top
        if len(rest) == 2:
            entry = out_folders.out_entry(ctx, top.folder, rest[1])
            if entry is not None:
                return OutFile(child(top.path, entry.name), environ, ctx, top.folder, entry)
            if out_folders.out_label_folder_exists(ctx, circuit, rest[1]):
                return OutLabel(child(top.path, rest[1]), environ, ctx, account, circuit, rest[1])
            return None
        if len(rest) == 3:
            label = OutLabel(child(top.path, rest[1]), environ, ctx, account, circuit, rest[1])
            entry = out_folders.out_entry(ctx, label.folder, rest[2])
            return OutFile(child(label.path, entry.name), environ, ctx, label.folder, entry) if entry else None
        return None
