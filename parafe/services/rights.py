"""Access rules shared by every connector: subscriber membership, circuit roles, document visibility.

A document id that exists but is not visible to the caller answers exactly like an unknown id (DECISIONS D1):
every lookup goes through :func:`visible_document`.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from parafe.db.models import Circuit, CircuitRole, Document, Subscriber
from parafe.domain.errors import E, ErrorDef, ParafeError
from parafe.services.auth import Account, Principal

AGENT = "agent"
VALIDEUR = "valideur"
SIGNATAIRE = "signataire"
ROLES = (AGENT, VALIDEUR, SIGNATAIRE)


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
    try:
        doc_id = int(str(document_id).strip())
    except ValueError:
        raise ParafeError(not_found, detail="document id is not a number") from None
    if doc_id <= 0 or doc_id > 2**62:
        raise ParafeError(not_found)
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
