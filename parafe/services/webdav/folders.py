"""The WebDAV drop folders (spec §4, API-REFERENCE §9, DECISIONS D6, D11), independent of the WebDAV library.

Tree under ``/partage/webdav/clients/``::

    <SIREN>/in/<circuit>[/<label>]/<name>     deposit (PUT, consumed synchronously) → receipt for 15 minutes
    <SIREN>/out/<circuit>[/<label>]/…         returns of documents deposited in the same in/ folder:
                                              <name> (signed), ACQUIT_<name> (Helios), <name>.refus.xml
    <SIREN>/out/PES_Retour/…, out/chorus-pivot/…   PES_Retour and Chorus-Pivot flows of the subscriber

Visibility: a caller sees the subscribers it has an account in, and in them the circuits it has a role on (all of
them for the subscriber's admin); PES_Retour and chorus-pivot are for the subscriber's admins and agents (the
rule of :mod:`parafe.services.helios.returns`). An unknown and a foreign name look the same (not found).

Every folder listing is ONE query whatever the number of entries; names, sizes, ETags and dates come from the
rows. This module holds the tree's names, who sees what, and ``in/`` (labels, deposits, receipts); ``out/`` (the
returns, and their purge) is :mod:`parafe.services.webdav.out_folders`.

Purge (spec §4.5): a receipt is listed for :data:`RECEIPT_TTL` (15 minutes, D6); an ``out/`` entry for
:data:`OUT_TTL` (15 days) after it appeared. Both are visibility rules evaluated on every request, so no job
is needed for correctness.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Select,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from parafe.context import AppContext
from parafe.db.models import (
    Circuit,
    CircuitRole,
    Document,
    Label,
    WebdavDeposit,
    utcnow,
)
from parafe.domain import deposit as rules
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import CIRCUIT_DONE
from parafe.services.access.auth import Account, Principal
from parafe.services.access.rights import AGENT, circuit_for_deposit, subscriber_account

AnySelect = Select[*tuple[Any, ...]]

RECEIPT_TTL = timedelta(minutes=15)
OUT_TTL = timedelta(days=15)

IN = "in"
OUT = "out"
PES_RETOUR = "PES_Retour"
CHORUS_PIVOT = "chorus-pivot"
# The flow folders of out/ and the ReturnItem kind each holds; the spelling varies in the spec (G-37), so
# lookups accept these aliases case-insensitively.
FLOW_KINDS: dict[str, str] = {PES_RETOUR: "pes_retour", CHORUS_PIVOT: "chorus"}
_FLOW_ALIASES: dict[str, str] = {
    "pes_retour": PES_RETOUR, "pes-retour": PES_RETOUR, "pesretour": PES_RETOUR,
    "chorus-pivot": CHORUS_PIVOT, "chorus_pivot": CHORUS_PIVOT, "chorus": CHORUS_PIVOT,
}
ACK_PREFIX = "ACQUIT_"
REFUSAL_SUFFIX = ".refus.xml"

# Kinds of files in the tree.
RECEIPT, SIGNED, ACK, REFUSAL, FLOW = "receipt", "signed", "ack", "refusal", "flow"

# A signed document is returned once its circuit is over (``Classé``, then possibly ``Archivé``), not while
# further signatures may still change it.
FINISHED_STATES = frozenset(s.value for s in CIRCUIT_DONE)

_CONTENT_TYPES = {"pdf": "application/pdf", "xml": "application/xml", "zip": "application/zip",
                  "txt": "text/plain"}


def content_type_of(name: str) -> str:
    return _CONTENT_TYPES.get(rules.extension_of(name), "application/octet-stream")


def nfc(text: str) -> str:
    """Names are compared and stored NFC (D3): a client may send NFD (macOS) or NFC."""
    return unicodedata.normalize("NFC", text)


def flow_folder(name: str) -> str | None:
    """The canonical flow folder (``PES_Retour`` / ``chorus-pivot``) a name of ``out/`` designates, or None."""
    return _FLOW_ALIASES.get(name.lower())


# --- who sees what ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CircuitView:
    """A circuit as one account sees it."""

    id: int
    key: str
    subscriber_id: int
    roles: frozenset[str]
    is_admin: bool

    @property
    def visible(self) -> bool:
        return self.is_admin or bool(self.roles)

    @property
    def can_deposit(self) -> bool:
        return self.is_admin or AGENT in self.roles


# the circuits of a subscriber with the account's roles on each, built once (a PUT resolves its circuit with it)
_CIRCUIT_ROWS = (
    select(Circuit.id, Circuit.key, CircuitRole.role)
    .outerjoin(CircuitRole, and_(CircuitRole.circuit_id == Circuit.id, CircuitRole.user_id == bindparam("user_id")))
    .where(Circuit.subscriber_id == bindparam("subscriber_id"), Circuit.on_demand.is_(False)))
_ALL_CIRCUITS = _CIRCUIT_ROWS.order_by(Circuit.key)
_ONE_CIRCUIT = _CIRCUIT_ROWS.where(Circuit.key == bindparam("key"))


def _account_params(account: Account) -> dict[str, int]:
    return {"user_id": account.user_id, "subscriber_id": account.subscriber_id}


def _views(rows: list[tuple[int, str, str | None]], account: Account) -> list[CircuitView]:
    grouped: dict[int, tuple[str, set[str]]] = {}
    for circuit_id, key, role in rows:
        entry = grouped.setdefault(circuit_id, (key, set()))
        if role:
            entry[1].add(role)
    views = [CircuitView(cid, key, account.subscriber_id, frozenset(roles), account.is_admin)
             for cid, (key, roles) in grouped.items()]
    return [v for v in views if v.visible]


def visible_circuits(ctx: AppContext, account: Account) -> list[CircuitView]:
    """The circuits of the account's subscriber it has a role on (all of them for an admin), by key."""
    with ctx.db.read_connection() as conn:
        rows = [tuple(r) for r in conn.execute(_ALL_CIRCUITS, _account_params(account))]
    return sorted(_views(rows, account), key=lambda v: v.key)  # type: ignore[arg-type]


def circuit_view(ctx: AppContext, account: Account, key: str) -> CircuitView | None:
    """The circuit ``key`` if the account sees it (unknown and invisible look the same: None)."""
    with ctx.db.read_connection() as conn:
        rows = [tuple(r) for r in conn.execute(_ONE_CIRCUIT, {**_account_params(account), "key": key})]
    views = _views(rows, account)  # type: ignore[arg-type]
    return views[0] if views else None


def may_fetch_flows(ctx: AppContext, account: Account) -> bool:
    """PES_Retour and Chorus flows belong to the subscriber: its admins and agents fetch them (as
    :mod:`parafe.services.helios.returns` decides for ``listRemainingPesRetour`` / ``…Chorus``)."""
    if account.is_admin:
        return True
    with ctx.db.read() as session:
        return session.scalar(select(exists().where(
            CircuitRole.user_id == account.user_id, CircuitRole.role == AGENT))) is True


# --- in/: labels, deposits, receipts -------------------------------------------------------------------------


class FileEntry(NamedTuple):
    """A file of the tree: a receipt in in/, or a return in out/ (a tuple: listings build thousands)."""

    name: str
    kind: str
    ref: int  # document id (receipt, signed, refusal) or ReturnItem id (ack, flow)
    size: int
    etag: str
    modified: datetime
    blob: str | None = None  # the content, by sha256
    data: bytes | None = None  # generated content (refusal envelope)

    @property
    def content_type(self) -> str:
        return content_type_of(self.name)


@dataclass(frozen=True)
class FolderEntry:
    name: str
    modified: datetime | None = None


def label_names(ctx: AppContext, circuit: CircuitView, now: datetime | None = None) -> list[FolderEntry]:
    """The label folders listed in ``in/<circuit>``: labels created empty (MKCOL) or used as a folder by a WebDAV
    deposit in the last 15 days. A deposit made at the circuit's root gets the label of the day (D5) but no
    folder (spec §4.2 Note 1); labels of the web services are not folders of the drop zone either. Any label of
    the circuit can still be opened by name."""
    cutoff = (now or utcnow()) - OUT_TTL
    w = WebdavDeposit
    used = exists().where(w.circuit_id == circuit.id, w.label_folder == Label.name, w.created_at >= cutoff)
    fresh_and_empty = and_(Label.created_at >= cutoff, ~exists().where(Document.label_id == Label.id))
    stmt = (select(Label.name, Label.created_at).where(Label.circuit_id == circuit.id)
            .where(or_(used, fresh_and_empty)).order_by(Label.name))
    with ctx.db.read() as session:
        rows = session.execute(stmt).all()
    return [FolderEntry(name, created) for name, created in rows]


def label_exists(ctx: AppContext, circuit: CircuitView, name: str) -> bool:
    with ctx.db.read() as session:
        return session.scalar(select(exists().where(Label.circuit_id == circuit.id, Label.name == nfc(name)))) is True


def create_label(ctx: AppContext, circuit: CircuitView, name: str) -> bool:
    """MKCOL ``in/<circuit>/<label>`` (D6): create the label; False when it already exists.

    Beyond the 10,000-labels guard (D5) nothing is created (a deposit into the folder then goes to the label of
    the day, as for the web services); the folder is still accepted.
    """
    if not circuit.can_deposit:
        raise ParafeError(E.NO_PERMISSION, detail="MKCOL needs the agent role on the circuit")
    checked = rules.check_label(name)
    if checked is None:
        raise ParafeError(E.BAD_REQUEST, reason="nom de dossier vide")
    with ctx.db.write() as session:
        if session.scalar(select(exists().where(Label.circuit_id == circuit.id, Label.name == checked))):
            return False
        count = session.scalar(select(func.count()).select_from(Label).where(Label.circuit_id == circuit.id)) or 0
        if count >= ctx.settings.label_guard:
            return True
        session.add(Label(circuit_id=circuit.id, name=checked))
    return True


def delete_label(ctx: AppContext, circuit: CircuitView, name: str) -> None:
    """DELETE ``in/<circuit>/<label>/``: only a label that holds no document can go."""
    if not circuit.can_deposit:
        raise ParafeError(E.NO_PERMISSION, detail="DELETE of a label folder needs the agent role")
    with ctx.db.write() as session:
        row = session.scalar(select(Label).where(Label.circuit_id == circuit.id, Label.name == nfc(name)))
        if row is None:
            raise ParafeError(E.ROUTE_NOT_FOUND)
        if session.scalar(select(exists().where(Document.label_id == row.id))):
            raise ParafeError(E.NO_PERMISSION, detail="the label holds documents")
        session.delete(row)


def check_deposit_target(ctx: AppContext, principal: Principal, siren: str, circuit_key: str) -> None:
    """The rights checks of the deposit service, before the body is read (same functions, same errors)."""
    with ctx.db.read() as session:
        subscriber, account = subscriber_account(session, principal, siren)
        circuit_for_deposit(session, subscriber, account, circuit_key)


_INSERT_RECEIPT = insert(WebdavDeposit)


def receipt_hook(
    account: Account, circuit: CircuitView, label_folder: str, put_name: str, size: int, sha256: str,
) -> Callable[[Connection, int], None]:
    """The deposit hook that keeps the receipt of an accepted PUT and where its returns go, written in the
    deposit's own transaction (a document never exists without its receipt)."""

    def record(conn: Connection, document_id: int) -> None:
        conn.execute(_INSERT_RECEIPT, {
            "document_id": document_id, "subscriber_id": account.subscriber_id, "circuit_id": circuit.id,
            "label_folder": nfc(label_folder), "put_name": nfc(put_name)[:255], "size": size, "sha256": sha256,
            "created_at": utcnow()})

    return record


def _receipt_stmt(circuit: CircuitView, label_folder: str, now: datetime) -> AnySelect:
    w = WebdavDeposit
    return (select(w.document_id, w.put_name, w.size, w.sha256, w.created_at)
            .join(Document, Document.id == w.document_id)
            .where(w.circuit_id == circuit.id, w.label_folder == nfc(label_folder),
                   w.created_at >= now - RECEIPT_TTL, w.receipt_hidden_at.is_(None), Document.deleted_at.is_(None))
            .order_by(w.created_at, w.document_id))


def _receipt_entries(rows: list[tuple[int, str, int, str, datetime]]) -> list[FileEntry]:
    latest: dict[str, FileEntry] = {}
    for doc_id, name, size, sha, created in rows:  # later deposits of a name win
        latest[name] = FileEntry(name=name, kind=RECEIPT, ref=doc_id, size=size, etag=str(doc_id),
                                 modified=created, blob=sha)
    return list(latest.values())


def receipts(ctx: AppContext, circuit: CircuitView, label_folder: str, now: datetime | None = None) -> list[FileEntry]:
    """Receipts of ``in/<circuit>[/<label_folder>]``: accepted PUTs of the last 15 minutes (D6)."""
    with ctx.db.read() as session:
        rows = [tuple(r) for r in session.execute(_receipt_stmt(circuit, label_folder, now or utcnow()))]
    return _receipt_entries(rows)


def receipt(ctx: AppContext, circuit: CircuitView, label_folder: str, name: str,
            now: datetime | None = None) -> FileEntry | None:
    with ctx.db.read() as session:
        stmt = _receipt_stmt(circuit, label_folder, now or utcnow()).where(WebdavDeposit.put_name == nfc(name))
        rows = [tuple(r) for r in session.execute(stmt)]
    found = _receipt_entries(rows)
    return found[0] if found else None


def hide_receipt(ctx: AppContext, circuit: CircuitView, entry: FileEntry) -> None:
    """DELETE of a receipt: it leaves the folder (the document itself is not touched)."""
    with ctx.db.write() as session:
        session.execute(update(WebdavDeposit).where(WebdavDeposit.document_id == entry.ref,
                                                    WebdavDeposit.circuit_id == circuit.id)
                        .values(receipt_hidden_at=utcnow()))
