"""Document life cycle operations shared by every connector: delete (spec §2.5.8 / §2.6.9, DECISIONS D14) and
the refusal message (spec §2.5.15 / §2.6.16, DECISIONS D20).

- :func:`delete` is definitive (spec §2.5.8 « la suppression est irréversible », issue 15): in one transaction
  the document and its context (metadata, history, annexes…) give way to a tombstone, which frees the (circuit,
  label, name) triplet while the NomFic stays reserved forever (``pes_nomfic``); its bytes are erased from the
  blob store right after the commit (:mod:`parafe.services.documents.erasure`).
- :func:`refusal_message` answers ``None`` when the document was neither refused nor rejected (REST answers
  ``{"comment": null}``); :func:`require_refusal_message` raises « Le document n'a pas été rejeté ou refusé »
  instead (SOAP ``getRefusalMessage`` faults).

:func:`retry_failed_step` queues again the failed job of a document in « Échec du traitement » for a subscriber
administrator (the portal's « Relancer »; :mod:`parafe.workflow.failures`).

:func:`may_act` is the rule "who may act on a document as its depositor" (the subscriber admin, the depositor,
an agent of the document's circuit), used by the other services of this family.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import CircuitRole, Document, HistoryEntry
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import DELETABLE, REFUSAL, State
from parafe.services.access.auth import Account, Principal
from parafe.services.access.rights import AGENT, visible_document

# States that mean "refused" (signature) or "rejected" (visa).
REFUSAL_STATES = frozenset(s.value for s in REFUSAL)


def may_act(session: Session, account: Account, document: Document) -> bool:
    """Whether ``account`` may act on ``document`` as a depositor would (delete it, define its metadata or OTP
    information, ask for its OTP URL): the subscriber's admin, the depositor, or an agent of its circuit."""
    if document.subscriber_id != account.subscriber_id:
        return False
    if account.is_admin or document.uploader_id == account.user_id:
        return True
    return bool(session.scalar(select(exists().where(
        CircuitRole.circuit_id == document.circuit_id, CircuitRole.user_id == account.user_id,
        CircuitRole.role == AGENT))))


def delete(ctx: AppContext, principal: Principal, document_id: int | str) -> None:
    """Delete a document, definitively (DECISIONS D14, :mod:`parafe.services.documents.erasure`).

    Raises ``DOCUMENT_NOT_FOUND`` (unknown, foreign or already deleted), ``AUTH_ACCESS_DENIED`` (visible but
    the caller may not act on it) and ``DELETE_NOT_ALLOWED`` (not in Préparé, Refusé, Rejeté / Visa
    désapprouvé).
    """
    from parafe.services.documents.erasure import bury
    from parafe.workflow.engine import workflow_tx

    with workflow_tx(ctx) as session:
        document, account = visible_document(session, principal, document_id, for_update=True)
        if not may_act(session, account, document):
            raise ParafeError(E.AUTH_ACCESS_DENIED, detail="only the depositor, an agent or an admin may delete")
        if State(document.state) not in DELETABLE:
            raise ParafeError(E.DELETE_NOT_ALLOWED, detail=f"state {document.state}")
        bury(session, document, reason="delete", by_user_id=account.user_id, by_name=account.full_name)


def retry_failed_step(ctx: AppContext, principal: Principal, document_id: int | str) -> str:
    """:func:`parafe.workflow.failures.retry` for a subscriber administrator (the portal): the document must be
    visible to them, in their subscriber, and they must be its administrator (``NO_PERMISSION`` otherwise);
    returns the state the document is back in."""
    from parafe.workflow.failures import retry

    with ctx.db.read() as session:
        document, account = visible_document(session, principal, document_id)
        subscriber_id, doc_id = document.subscriber_id, document.id
    if not account.is_admin:
        raise ParafeError(E.NO_PERMISSION, detail="only the subscriber's administrators retry a failed step")
    return retry(ctx, doc_id, actor=account.full_name, user_id=account.user_id, subscriber_id=subscriber_id)


def _refusal(session: Session, document: Document) -> tuple[bool, str | None]:
    """(was refused or rejected, message) of a document."""
    entry = session.scalar(
        select(HistoryEntry).where(HistoryEntry.document_id == document.id,
                                   HistoryEntry.state.in_(REFUSAL_STATES))
        .order_by(HistoryEntry.id.desc()).limit(1))
    refused = document.state in REFUSAL_STATES or entry is not None
    if not refused:
        return False, None
    if document.refusal_message:
        return True, document.refusal_message
    return True, (entry.comment if entry is not None else None) or ""


def refusal_message(ctx: AppContext, principal: Principal, document_id: int | str) -> str | None:
    """The refusal (signature) or rejection (visa) message of a visible document; ``None`` when it was neither
    refused nor rejected (DECISIONS D20), ``""`` when it was but the actor left no message.

    Raises ``DOCUMENT_NOT_FOUND`` for an unknown or foreign id.
    """
    with ctx.db.read() as session:
        document, _ = visible_document(session, principal, document_id)
        _, message = _refusal(session, document)
        return message


def require_refusal_message(ctx: AppContext, principal: Principal, document_id: int | str) -> str:
    """As :func:`refusal_message`, but raises ``NOT_REFUSED`` when the document was neither refused nor
    rejected (SOAP ``getRefusalMessage``, spec §2.5.15)."""
    message = refusal_message(ctx, principal, document_id)
    if message is None:
        raise ParafeError(E.NOT_REFUSED)
    return message
