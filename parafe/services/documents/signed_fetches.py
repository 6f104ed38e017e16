"""What a client still has to fetch: ``listRemainingSignedDocs`` (SOAP; REST ``…/{siren}/signed/remaining``).

A document is listed once it has been signed — a signature is in its history (« Signé », « OTP signé »), whatever
its state now (« Signé », « Classé », « Archivé », « Transmis à Hélios »…; circuits usually go on to « Classé » in
the same transaction as the signature) — and until a client of its subscriber downloads it: SOAP ``download``,
REST ``…/download`` or a WebDAV ``GET`` of its signed file in ``out/`` (:func:`mark`, table
``signed_fetches``). The portal's viewer is a person reading, not a client fetching: it does not count.
A document whose circuit ended in a refusal (« Refusé », « Rejeté », « signature rejetée ») is not listed: the
client fetches the refusal instead. Visibility is the search's (the subscriber's admin sees every circuit,
others the circuits they have a role on and their own deposits), so another subscriber never sees it.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Exists, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from parafe.context import AppContext
from parafe.db.models import Document, HistoryEntry, SignedFetch, utcnow
from parafe.domain.states import State
from parafe.services.access.auth import Principal
from parafe.services.documents.search import MAX_RESULTS, SIGN_STATES, SearchCriteria, document_conditions

NOT_LISTED = (State.REFUSED.value, State.DISAPPROVED.value, State.SIGNATURE_REJECTED.value)


def _signed_ever(document_id: int | ColumnElement[int] | InstrumentedAttribute[int]) -> Exists:
    return exists().where(HistoryEntry.document_id == document_id, HistoryEntry.state.in_(SIGN_STATES))


def remaining(ctx: AppContext, principal: Principal, siren: str | None, circuit: str | None = None) -> list[int]:
    """Ids of the signed documents of ``siren`` (of ``circuit`` when given) no client has downloaded yet,
    ascending. Raises the search's errors: ``SUBSCRIBER_UNKNOWN_OR_FORBIDDEN``, ``CIRCUIT_NOT_FOUND``,
    ``NO_PERMISSION`` (a circuit the caller has no role on)."""
    wire: dict[str, str] = {"siren": str(siren or "")}
    if circuit:
        wire["circuitId"] = circuit
    with ctx.db.read() as session:
        stmt = select(Document.id).where(
            *document_conditions(session, principal, SearchCriteria.from_wire(wire)),
            _signed_ever(Document.id), Document.state.not_in(NOT_LISTED),
            ~exists().where(SignedFetch.document_id == Document.id))
        return [int(i) for i in session.scalars(stmt.order_by(Document.id).limit(MAX_RESULTS))]


def awaiting_fetch(session: Session, document_id: int) -> bool:
    """Whether a download of ``document_id`` now takes it out of the remaining list (signed, not fetched yet)."""
    if session.get(SignedFetch, document_id) is not None:
        return False
    return bool(session.scalar(select(_signed_ever(document_id))))


def mark(ctx: AppContext, principal: Principal, document: Document | int, via: str) -> None:
    """Record that a client of the document's subscriber fetched it (it leaves the remaining list). The caller
    has checked the document is visible; a document not signed yet is not marked. Idempotent."""
    document_id = document if isinstance(document, int) else document.id
    try:
        with ctx.db.write() as session:
            row = session.get(Document, document_id)
            if row is None or not awaiting_fetch(session, document_id):
                return
            account = principal.account_in(row.subscriber_id)
            session.add(SignedFetch(document_id=document_id, user_id=account.user_id if account else None,
                                    via=via, fetched_at=utcnow()))
    except IntegrityError:  # a concurrent download marked it first
        return
