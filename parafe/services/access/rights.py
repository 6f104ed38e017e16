"""Access rules shared by every connector: subscriber membership, circuit roles, document visibility.

A document id that exists but is not visible to the caller answers exactly like an unknown id (DECISIONS D1):
every lookup goes through :func:`visible_document`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Exists, and_, bindparam, exists, or_, select, true
from sqlalchemy.orm import Session

from parafe.db.models import Circuit, CircuitRole, Document, Label, Subscriber
from parafe.domain.errors import E, ErrorDef, ParafeError
from parafe.domain.ids import parse_id
from parafe.services.access.auth import Account, Principal

AGENT = "agent"
VALIDEUR = "valideur"
SIGNATAIRE = "signataire"


def subscriber_account(
    session: Session, principal: Principal, siren: str, error: ErrorDef = E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN,
) -> tuple[Subscriber, Account]:
    """The subscriber named by ``siren`` and the caller's account in it (unknown and foreign look the same)."""
    account = principal.account_for(str(siren).strip())
    if account is None:
        raise ParafeError(error)
    subscriber = session.get(Subscriber, account.subscriber_id)
    if subscriber is None:
        raise ParafeError(error)
    return subscriber, account


def roles_on(session: Session, account: Account, circuit_id: int) -> set[str]:
    return set(session.scalars(select(CircuitRole.role).where(
        CircuitRole.circuit_id == circuit_id, CircuitRole.user_id == account.user_id)))


def circuit_for_deposit(session: Session, subscriber: Subscriber, account: Account, circuit_key: str) -> Circuit:
    """The circuit a deposit targets; the caller must be an agent on it (or the subscriber's admin)."""
    if not circuit_key or any(ord(ch) < 32 for ch in circuit_key) or len(circuit_key) > 255:
        raise ParafeError(E.CIRCUIT_NOT_FOUND)
    circuit = session.scalar(select(Circuit).where(
        Circuit.subscriber_id == subscriber.id, Circuit.key == circuit_key.strip(), Circuit.on_demand.is_(False)))
    if circuit is None:
        raise ParafeError(E.CIRCUIT_NOT_FOUND)
    if not account.is_admin and AGENT not in roles_on(session, account, circuit.id):
        raise ParafeError(E.NO_PERMISSION)
    return circuit


@dataclass(frozen=True)
class DepositCircuit:
    """What a deposit needs of its circuit (``id`` is None for the template of an on-demand circuit)."""

    id: int | None
    subscriber_id: int | None
    key: str
    type: str
    pes_pj: bool
    metadata_model: list[Any] | None

    @classmethod
    def of(cls, circuit: Circuit) -> DepositCircuit:
        return cls(circuit.id, circuit.subscriber_id, circuit.key or "", circuit.type, bool(circuit.pes_pj),
                   circuit.metadata_model)


_circuits = Circuit.__table__
_roles = CircuitRole.__table__
_DEPOSIT_CIRCUIT = select(
    _circuits.c.id, _circuits.c.subscriber_id, _circuits.c.key, _circuits.c.type, _circuits.c.pes_pj,
    _circuits.c.metadata_model,
    exists().where(_roles.c.circuit_id == _circuits.c.id, _roles.c.user_id == bindparam("user_id"),
                   _roles.c.role == AGENT).label("is_agent"),
).where(_circuits.c.subscriber_id == bindparam("subscriber_id"), _circuits.c.key == bindparam("key"),
        _circuits.c.on_demand.is_(False))
_documents = Document.__table__
_labels = Label.__table__


def _live_triplet(circuit_id: ColumnElement[int]) -> Exists:
    """A live document of circuit ``circuit_id`` holds the (label, name) bound as ``label`` / ``name``: the
    triplet the partial unique index uq_documents_live_triplet guards."""
    return exists().where(
        _labels.c.circuit_id == circuit_id, _labels.c.name == bindparam("label"),
        _documents.c.circuit_id == circuit_id, _documents.c.label_id == _labels.c.id,
        _documents.c.name == bindparam("name"), _documents.c.deleted_at.is_(None))


_DEPOSIT_CIRCUIT_TRIPLET = _DEPOSIT_CIRCUIT.add_columns(_live_triplet(_circuits.c.id).label("triplet_taken"))
# the same test for a known circuit id (bundles, whose name is known only once opened; a lost insert race)
LIVE_TRIPLET_TAKEN = select(_live_triplet(bindparam("circuit_id")))
_SUBSCRIBER_EXISTS = select(Subscriber.__table__.c.id).where(Subscriber.__table__.c.id == bindparam("id"))


def deposit_target(conn: Connection, principal: Principal, siren: str, circuit_key: str,
                   triplet: tuple[str, str] | None = None) -> tuple[Account, DepositCircuit, bool]:
    """:func:`subscriber_account` then :func:`circuit_for_deposit` in one query (the deposit's hot path): the
    caller's account in ``siren``, the circuit ``circuit_key`` they may deposit into (same errors) and, when
    ``triplet`` = (label, name) is given, whether a live document of that circuit already holds it."""
    account = principal.account_for(str(siren).strip())
    if account is None:
        raise ParafeError(E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN)
    key = circuit_key.strip() if circuit_key else ""
    valid_key = bool(circuit_key) and not any(ord(ch) < 32 for ch in circuit_key) and len(circuit_key) <= 255
    params = {"user_id": account.user_id, "subscriber_id": account.subscriber_id, "key": key}
    if triplet is not None:
        params.update(label=triplet[0], name=triplet[1])
    stmt = _DEPOSIT_CIRCUIT if triplet is None else _DEPOSIT_CIRCUIT_TRIPLET
    row = conn.execute(stmt, params).first() if valid_key else None
    if row is None:
        if conn.execute(_SUBSCRIBER_EXISTS, {"id": account.subscriber_id}).first() is None:
            raise ParafeError(E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN)
        raise ParafeError(E.CIRCUIT_NOT_FOUND)
    if not account.is_admin and not row.is_agent:
        raise ParafeError(E.NO_PERMISSION)
    taken = bool(row.triplet_taken) if triplet is not None else False
    return account, DepositCircuit(row.id, row.subscriber_id, row.key, row.type, bool(row.pes_pj),
                                   row.metadata_model), taken


def visible_within(account: Account, session: Session | None = None) -> ColumnElement[bool]:
    """:func:`can_see` in SQL, among the documents of ``account``'s subscriber (the caller filters on
    ``Document.subscriber_id``): everything for an administrator, otherwise the documents of the circuits the
    user has a role on and those they deposited.

    Issue 19: the portal dashboard and the search each wrote this clause (one with a correlated ``EXISTS``, one
    with ``circuit_id IN (…)``). Kept: the search's shape (docs/search.md). The deposits branch rarely adds
    anything (one deposits on one's circuits) and its ``OR`` keeps the planner from using the circuit indexes;
    given a ``session``, it is only written when the caller has a live document in a circuit of the subscriber
    they have no role on. That check probes ``ix_documents_search_uploader`` (subscriber_id, uploader_id,
    circuit_id, …) from whichever side is smaller: the caller's deposits or the circuits they have no role on.
    """
    if account.is_admin:
        return true()
    role_circuits = select(CircuitRole.circuit_id).where(CircuitRole.user_id == account.user_id)
    if session is not None:
        other_circuits = select(Circuit.id).where(Circuit.subscriber_id == account.subscriber_id,
                                                  Circuit.id.not_in(role_circuits))
        elsewhere = session.scalar(select(Document.id).where(
            Document.subscriber_id == account.subscriber_id, Document.uploader_id == account.user_id,
            Document.deleted_at.is_(None), Document.circuit_id.in_(other_circuits)).limit(1))
        if elsewhere is None:
            return Document.circuit_id.in_(role_circuits)
    return or_(Document.circuit_id.in_(role_circuits), Document.uploader_id == account.user_id)


def visible_clause(account: Account, session: Session | None = None) -> ColumnElement[bool]:
    """The documents ``account`` may see (:func:`can_see` in SQL), its subscriber's filter included."""
    if account.is_admin:
        return Document.subscriber_id == account.subscriber_id
    return and_(Document.subscriber_id == account.subscriber_id, visible_within(account, session))


def can_see(session: Session, account: Account, document: Document) -> bool:
    if document.subscriber_id != account.subscriber_id:
        return False
    if account.is_admin or document.uploader_id == account.user_id:
        return True
    return bool(session.scalar(select(exists().where(
        CircuitRole.circuit_id == document.circuit_id, CircuitRole.user_id == account.user_id))))


def visible_document(
    session: Session, principal: Principal, document_id: int | str, not_found: ErrorDef = E.DOCUMENT_NOT_FOUND,
    *, for_update: bool = False,
) -> tuple[Document, Account]:
    """The live document with this id if the caller may see it; otherwise ``not_found`` (no existence oracle)."""
    doc_id = parse_id(document_id, not_found)
    stmt = select(Document).where(Document.id == doc_id, Document.deleted_at.is_(None))
    if for_update:
        stmt = stmt.with_for_update()
    document = session.scalar(stmt)
    if document is None:
        raise ParafeError(not_found)
    account = principal.account_in(document.subscriber_id)
    if account is None or not can_see(session, account, document):
        raise ParafeError(not_found)
    return document, account
