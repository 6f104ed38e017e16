"""The resources of the WebDAV drop folders: a virtual tree over :mod:`parafe.services.webdav.folders`, one class
per level (``<SIREN>/in/<circuit>/<label>``, ``<SIREN>/out/…``, receipts, returns, flows), which
:class:`parafe.connectors.webdav.provider.ParafeDAVProvider` maps paths to.

Resources are built from the caller's principal (``environ["parafe.principal"]``, set by the gate) and the rows
of one listing query per folder; no resource does a query of its own when listed. PUT is WsgiDAV's: the body
is spooled (size limit enforced while streaming) by :class:`PendingUpload.begin_write` and consumed in
:meth:`PendingUpload.end_write` by the deposit service (synchronously: ``201`` + ``x-fast-docid``, or the
catalogue error). PROPFIND, MKCOL, DELETE and OPTIONS are served by :mod:`parafe.connectors.webdav.handlers`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, BinaryIO

from wsgidav import util
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, _DAVResource

from parafe.context import AppContext
from parafe.domain.errors import E, ParafeError
from parafe.security.asgi_types import Environ
from parafe.services.access.auth import Account, Principal
from parafe.services.documents import signed_fetches
from parafe.services.documents.deposit import DepositRequest, Upload, deposit
from parafe.services.webdav import folders as svc
from parafe.services.webdav import out_folders
from parafe.storage.spool import HashingSpool, SizeLimitExceeded

log = logging.getLogger(__name__)

# Past the size limit, read (and drop) this much more so that the client reads the 413 instead of a reset.
DRAIN_LIMIT = 64 * 1024 * 1024



def _ts(moment: datetime | None) -> float | None:
    """Seconds since the epoch of a stored UTC time (SQLite gives it back naive)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def child(path: str, name: str) -> str:
    """The path of ``name`` in the folder at ``path``."""
    return path.rstrip("/") + "/" + name


def principal_of(environ: Environ) -> Principal:
    principal = environ.get("parafe.principal")
    assert isinstance(principal, Principal), "the gate authenticates every request"
    return principal


class Node:
    """What every resource of the tree offers to the handlers (properties for the fast PROPFIND)."""

    kind = "node"
    ctx: AppContext

    def modified(self) -> float | None:
        return None


Listing = tuple[list["Collection"], list[svc.FileEntry]]


# --- collections -------------------------------------------------------------------------------------------


class Collection(Node, DAVCollection):
    """A folder. :meth:`listing` gives its sub-folders (resources) and its files (rows of one query); the
    PROPFIND handler renders the files straight from the rows, WsgiDAV gets resources from :meth:`children`."""

    def __init__(self, path: str, environ: Environ, ctx: AppContext) -> None:
        DAVCollection.__init__(self, path, environ)
        self.ctx = ctx

    def listing(self) -> Listing:
        return [], []

    def file_resource(self, entry: svc.FileEntry) -> _DAVResource:
        raise NotImplementedError

    def children(self) -> list[_DAVResource]:
        folders, files = self.listing()
        return [*folders, *(self.file_resource(e) for e in files)]

    def get_member_list(self) -> list[_DAVResource]:
        return self.children()

    def get_member_names(self) -> list[str]:
        return [util.get_uri_name(c.path) for c in self.children()]

    def get_member(self, name: str) -> _DAVResource | None:
        for child in self.children():
            if util.get_uri_name(child.path) == name:
                return child
        return None

    def get_last_modified(self) -> float | None:
        return self.modified()

    def get_display_name(self) -> str:
        return util.get_uri_name(self.path)

    def create_collection(self, name: str) -> None:
        raise ParafeError(E.NO_PERMISSION, detail="no folder can be created here")

    def create_empty_resource(self, name: str) -> _DAVResource:
        raise ParafeError(E.NO_PERMISSION, detail="no file can be deposited here")

    def delete(self) -> None:
        raise ParafeError(E.NO_PERMISSION, detail="this folder cannot be deleted")


class RootCollection(Collection):
    """``/``: the SIRENs the caller has an account in."""

    kind = "root"

    def listing(self) -> Listing:
        principal = principal_of(self.environ)
        seen: dict[str, Account] = {}
        for account in principal.accounts:
            seen.setdefault(account.siren, account)
        return [SubscriberCollection(child(self.path, s), self.environ, self.ctx, a)
                for s, a in sorted(seen.items())], []


class SubscriberCollection(Collection):
    """``/<SIREN>``: ``in`` and ``out``."""

    kind = "subscriber"

    def __init__(self, path: str, environ: Environ, ctx: AppContext, account: Account) -> None:
        super().__init__(path, environ, ctx)
        self.account = account

    def listing(self) -> Listing:
        return [InRoot(child(self.path, svc.IN), self.environ, self.ctx, self.account),
                OutRoot(child(self.path, svc.OUT), self.environ, self.ctx, self.account)], []


class InRoot(Collection):
    """``/<SIREN>/in``: the circuits the caller has a role on."""

    kind = "in"

    def __init__(self, path: str, environ: Environ, ctx: AppContext, account: Account) -> None:
        super().__init__(path, environ, ctx)
        self.account = account

    def listing(self) -> Listing:
        return [InCircuit(child(self.path, c.key), self.environ, self.ctx, self.account, c)
                for c in svc.visible_circuits(self.ctx, self.account)], []


class InCircuit(Collection):
    """``/<SIREN>/in/<circuit>``: its label folders and the receipts of deposits made at its root."""

    kind = "in-circuit"
    label_folder = ""

    def __init__(self, path: str, environ: Environ, ctx: AppContext, account: Account,
                 circuit: svc.CircuitView) -> None:
        super().__init__(path, environ, ctx)
        self.account = account
        self.circuit = circuit

    def listing(self) -> Listing:
        folders: list[Collection] = [
            InLabel(child(self.path, f.name), self.environ, self.ctx, self.account, self.circuit, f.name, f.modified)
            for f in svc.label_names(self.ctx, self.circuit)]
        return folders, svc.receipts(self.ctx, self.circuit, self.label_folder)

    def file_resource(self, entry: svc.FileEntry) -> _DAVResource:
        return Receipt(child(self.path, entry.name), self.environ, self.ctx, self, entry)

    def create_empty_resource(self, name: str) -> _DAVResource:
        return PendingUpload(child(self.path, name), self.environ, self.ctx, self, name)

    def create_collection(self, name: str) -> None:
        svc.create_label(self.ctx, self.circuit, name)


class InLabel(InCircuit):
    """``/<SIREN>/in/<circuit>/<label>``: receipts of the deposits made in it (virtual until the first PUT or
    MKCOL: a PUT into a label folder that does not exist yet creates the label, D6)."""

    kind = "in-label"

    def __init__(self, path: str, environ: Environ, ctx: AppContext, account: Account,
                 circuit: svc.CircuitView, label_folder: str, created: datetime | None = None) -> None:
        super().__init__(path, environ, ctx, account, circuit)
        self.label_folder = svc.nfc(label_folder)
        self._created = created

    def listing(self) -> Listing:
        return [], svc.receipts(self.ctx, self.circuit, self.label_folder)

    def modified(self) -> float | None:
        return _ts(self._created)

    def create_collection(self, name: str) -> None:
        raise ParafeError(E.NO_PERMISSION, detail="labels are one level deep")

    def delete(self) -> None:
        svc.delete_label(self.ctx, self.circuit, self.label_folder)


class OutRoot(Collection):
    """``/<SIREN>/out``: the circuits the caller has a role on, ``PES_Retour`` and ``chorus-pivot``."""

    kind = "out"

    def __init__(self, path: str, environ: Environ, ctx: AppContext, account: Account) -> None:
        super().__init__(path, environ, ctx)
        self.account = account

    def listing(self) -> Listing:
        folders: list[Collection] = [
            OutCircuit(child(self.path, c.key), self.environ, self.ctx, self.account, c)
            for c in svc.visible_circuits(self.ctx, self.account) if svc.flow_folder(c.key) is None]
        if svc.may_fetch_flows(self.ctx, self.account):
            folders += [FlowFolder(child(self.path, f), self.environ, self.ctx, self.account, f)
                        for f in svc.FLOW_KINDS]
        return folders, []


class _OutFolder(Collection):
    folder: out_folders.OutFolder

    def _files(self) -> list[svc.FileEntry]:
        return out_folders.out_entries(self.ctx, self.folder)

    def file_resource(self, entry: svc.FileEntry) -> _DAVResource:
        return OutFile(child(self.path, entry.name), self.environ, self.ctx, self.folder, entry)


class OutCircuit(_OutFolder):
    """``/<SIREN>/out/<circuit>``: returns of deposits made at the circuit's root, and the label folders that
    hold returns (empty ones disappear, spec §4.5)."""

    kind = "out-circuit"

    def __init__(self, path: str, environ: Environ, ctx: AppContext, account: Account,
                 circuit: svc.CircuitView) -> None:
        super().__init__(path, environ, ctx)
        self.account = account
        self.circuit = circuit
        self.folder = out_folders.OutFolder(subscriber_id=account.subscriber_id, circuit=circuit)

    def listing(self) -> Listing:
        folders: list[Collection] = [
            OutLabel(child(self.path, f.name), self.environ, self.ctx, self.account, self.circuit, f.name,
                     f.modified)
            for f in out_folders.out_label_folders(self.ctx, self.circuit)]
        return folders, self._files()


class OutLabel(_OutFolder):
    kind = "out-label"

    def __init__(self, path: str, environ: Environ, ctx: AppContext, account: Account,
                 circuit: svc.CircuitView, label_folder: str, modified: datetime | None = None) -> None:
        super().__init__(path, environ, ctx)
        self.folder = out_folders.OutFolder(subscriber_id=account.subscriber_id, circuit=circuit,
                                    label_folder=svc.nfc(label_folder))
        self._modified = modified

    def listing(self) -> Listing:
        return [], self._files()

    def modified(self) -> float | None:
        return _ts(self._modified)


class FlowFolder(_OutFolder):
    """``/<SIREN>/out/PES_Retour`` and ``/<SIREN>/out/chorus-pivot``."""

    kind = "out-flow"

    def __init__(self, path: str, environ: Environ, ctx: AppContext, account: Account, flow: str) -> None:
        super().__init__(path, environ, ctx)
        self.folder = out_folders.OutFolder(subscriber_id=account.subscriber_id, flow=flow)

    def listing(self) -> Listing:
        return [], self._files()


# --- files -------------------------------------------------------------------------------------------------


class File(Node, DAVNonCollection):
    entry: svc.FileEntry

    def __init__(self, path: str, environ: Environ, ctx: AppContext) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self.ctx = ctx

    def get_content_length(self) -> int | None:
        return self.entry.size

    def get_content_type(self) -> str:
        return self.entry.content_type

    def get_etag(self) -> str | None:
        return self.entry.etag

    def support_etag(self) -> bool:
        return True

    def get_last_modified(self) -> float | None:
        return _ts(self.entry.modified)

    def modified(self) -> float | None:
        return self.get_last_modified()

    def get_display_name(self) -> str:
        return self.entry.name

    def support_ranges(self) -> bool:
        return self.entry.data is not None or (
            self.entry.blob is not None and self.ctx.store.local_path(self.entry.blob) is not None)

    def get_content(self) -> BinaryIO:
        return out_folders.open_entry(self.ctx, self.entry)

    def begin_write(self, *, content_type: str | None = None) -> Any:
        raise ParafeError(E.NO_PERMISSION, detail="returns are read-only")

    def delete(self) -> None:
        raise ParafeError(E.NO_PERMISSION, detail="this file cannot be deleted")


class OutFile(File):
    """A return in out/: signed document, acknowledgement, refusal envelope, PES_Retour or Chorus flow."""

    kind = "out-file"

    def __init__(self, path: str, environ: Environ, ctx: AppContext, folder: out_folders.OutFolder,
                 entry: svc.FileEntry) -> None:
        super().__init__(path, environ, ctx)
        self.folder = folder
        self.entry = entry

    def get_content(self) -> BinaryIO:
        content = out_folders.open_entry(self.ctx, self.entry)
        if self.entry.kind == svc.SIGNED:  # fetched: it leaves listRemainingSignedDocs
            signed_fetches.mark(self.ctx, principal_of(self.environ), self.entry.ref, "webdav")
        return content

    def delete(self) -> None:
        out_folders.delete_entry(self.ctx, self.folder, self.entry)


class _Writer:
    """The file object WsgiDAV writes a PUT body into: a hashing spool with the size limit enforced while
    streaming; past the limit the rest is read and dropped (bounded) so that the client gets the 413."""

    def __init__(self, spool: HashingSpool) -> None:
        self.spool = spool
        self.too_large = False
        self.dropped = 0

    def write(self, data: bytes) -> int:
        if self.too_large:
            self.dropped += len(data)
            if self.dropped > DRAIN_LIMIT:
                raise ParafeError(E.FILE_TOO_LARGE)
            return len(data)
        try:
            return self.spool.write(data)
        except SizeLimitExceeded:
            self.too_large = True
            self.spool.discard()
            return len(data)

    def close(self) -> None:
        """WsgiDAV closes the file before ``end_write``; the spool is finished there."""


class PendingUpload(File):
    """A PUT target in in/: the body is spooled, then deposited by the deposit service in ``end_write``."""

    kind = "pending"

    def __init__(self, path: str, environ: Environ, ctx: AppContext, folder: InCircuit, name: str) -> None:
        super().__init__(path, environ, ctx)
        self.folder = folder
        self.name = name
        self.writer: _Writer | None = None
        self.document_id: int | None = None

    def get_content_length(self) -> int | None:
        return None

    def get_content_type(self) -> str:
        return svc.content_type_of(self.name)

    def get_etag(self) -> str | None:
        return str(self.document_id) if self.document_id is not None else None

    def get_last_modified(self) -> float | None:
        return None

    def get_display_name(self) -> str:
        return self.name

    def support_ranges(self) -> bool:
        return False

    def get_content(self) -> BinaryIO:
        raise ParafeError(E.ROUTE_NOT_FOUND)

    def begin_write(self, *, content_type: str | None = None) -> _Writer:
        self.writer = _Writer(HashingSpool(self.ctx.store.spool_dir, limit=self.ctx.settings.max_upload_bytes))
        return self.writer

    def end_write(self, *, with_errors: bool) -> None:
        writer = self.writer
        assert writer is not None
        if with_errors:
            writer.spool.discard()
            return
        if writer.too_large:
            raise ParafeError(E.FILE_TOO_LARGE)
        try:
            spooled = writer.spool.finish(fsync=False)  # the blob store fsyncs what it keeps
            raw_name = self.environ.get("parafe.raw_name")
            filename: str | bytes = raw_name if isinstance(raw_name, bytes) else self.name
            folder = self.folder
            request = DepositRequest(
                siren=folder.account.siren, circuit=folder.circuit.key,
                upload=Upload(path=spooled.path, sha256=spooled.sha256, size=spooled.size, filename=filename),
                label=folder.label_folder or None, source="webdav")
            hook = svc.receipt_hook(folder.account, folder.circuit, folder.label_folder, svc.nfc(self.name),
                                    spooled.size, spooled.sha256)
            result = deposit(self.ctx, principal_of(self.environ), request, on_insert=hook)
        finally:
            writer.spool.discard()
        self.document_id = result.document_id
        self.environ["parafe.put_headers"] = [("x-fast-docid", str(result.document_id))]


class Receipt(PendingUpload):
    """A read-only receipt in in/ (D6): same name as the PUT, its size, ETag = docid, for 15 minutes.

    GET answers the deposited file when it is stored as such (not for a zip bundle); a PUT onto it goes
    through the deposit service, which answers the « Doublon » error; DELETE takes it out of the folder.
    """

    kind = "receipt"

    def __init__(self, path: str, environ: Environ, ctx: AppContext, folder: InCircuit,
                 entry: svc.FileEntry) -> None:
        super().__init__(path, environ, ctx, folder, entry.name)
        self.entry = entry

    def get_content_length(self) -> int | None:
        return self.entry.size

    def get_content_type(self) -> str:
        return self.entry.content_type

    def get_etag(self) -> str | None:
        return str(self.document_id) if self.document_id is not None else self.entry.etag

    def get_last_modified(self) -> float | None:
        return _ts(self.entry.modified)

    def support_ranges(self) -> bool:
        return self.entry.blob is not None and self.ctx.store.local_path(self.entry.blob) is not None

    def get_content(self) -> BinaryIO:
        if self.entry.blob is None or not self.ctx.store.exists(self.entry.blob):
            raise ParafeError(E.ROUTE_NOT_FOUND, detail="the content of a zip bundle is not kept as such")
        return out_folders.open_entry(self.ctx, self.entry)

    def delete(self) -> None:
        svc.hide_receipt(self.ctx, self.folder.circuit, self.entry)
