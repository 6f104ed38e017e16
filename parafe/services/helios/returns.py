"""Returns a client fetches back (spec §2.3, §10; DECISIONS D11): Helios acknowledgements, PES_Retour flows and
Chorus-Pivot flows.

Each return is a :class:`parafe.db.models.ReturnItem` whose ``public_id`` is the id clients see in the
"remaining" lists and pass to the matching download method:

- an acknowledgement belongs to a deposited PES document and its public id **is** the document id
  (``listRemainingAcknowledgements`` → ``downloadAcknowledgement(documentId)``);
- PES_Retour and Chorus flows come from the treasury / Chorus Pro, not from a deposit; their public ids are
  allocated from ``RETURN_ID_START`` + the row id (9 digits, never reused).

An id leaves its remaining list once it has been downloaded through the matching download method (REST or
SOAP) or its WebDAV return deleted (D11). Returns are filed by :func:`parafe.transmission.returns.add_return`
(the Chorus poller, ``parafe dev inject``), which this module re-exports with the kinds and the id allocation.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import CircuitRole, Document, ReturnItem, utcnow
from parafe.domain.errors import E, ParafeError
from parafe.domain.ids import parse_id
from parafe.services.access.auth import Account, Principal
from parafe.services.access.rights import AGENT, subscriber_account, visible_document
from parafe.storage.base import BlobNotFound
from parafe.transmission.returns import KINDS as KINDS
from parafe.transmission.returns import RETURN_ID_START as RETURN_ID_START
from parafe.transmission.returns import ReturnKind as ReturnKind
from parafe.transmission.returns import add_return as add_return


@dataclass(frozen=True)
class ReturnContent:
    """A downloaded return: its public id, file name and XML bytes."""

    public_id: int
    name: str
    data: bytes
    media_type: str = "application/xml"


def _may_fetch_subscriber_returns(session: Session, account: Account) -> bool:
    """PES_Retour and Chorus flows belong to the subscriber: its admin and its agents fetch them."""
    if account.is_admin:
        return True
    return session.scalar(select(CircuitRole.circuit_id).where(
        CircuitRole.user_id == account.user_id, CircuitRole.role == AGENT).limit(1)) is not None


def remaining(ctx: AppContext, principal: Principal, siren: str | int, kind: ReturnKind) -> list[int]:
    """Public ids of the returns of ``kind`` not downloaded yet, oldest first (R13–R15, SOAP
    ``listRemaining*``).

    Acknowledgements are listed for the documents the caller may see (admins: the whole subscriber);
    PES_Retour and Chorus flows for the subscriber's admins and agents. Raises
    ``SUBSCRIBER_UNKNOWN_OR_FORBIDDEN`` for a siren the caller has no account in (or no right to read
    subscriber returns).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown return kind {kind!r}")
    with ctx.db.read() as session:
        subscriber, account = subscriber_account(session, principal, str(siren))
        stmt = select(ReturnItem.public_id).where(
            ReturnItem.subscriber_id == subscriber.id, ReturnItem.kind == kind,
            ReturnItem.downloaded_at.is_(None), ReturnItem.webdav_deleted_at.is_(None))
        if kind == "ack":
            stmt = stmt.join(Document, Document.id == ReturnItem.document_id).where(Document.deleted_at.is_(None))
            if not account.is_admin:
                circuits = select(CircuitRole.circuit_id).where(CircuitRole.user_id == account.user_id)
                stmt = stmt.where(or_(Document.circuit_id.in_(circuits), Document.uploader_id == account.user_id))
        elif not _may_fetch_subscriber_returns(session, account):
            raise ParafeError(E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN, detail="not an agent or admin of the subscriber")
        ids: list[int] = []
        for public_id in session.scalars(stmt.order_by(ReturnItem.created_at, ReturnItem.id)):
            if public_id not in ids:
                ids.append(int(public_id))
        return ids


def _read(ctx: AppContext, item: ReturnItem) -> bytes:
    try:
        return ctx.store.read_bytes(item.blob_sha256)
    except BlobNotFound:
        raise ParafeError(E.CONTENT_RETRIEVAL, detail=f"blob of return {item.id} is missing") from None


def download(ctx: AppContext, principal: Principal, public_id: int | str, kind: ReturnKind) -> ReturnContent:
    """The content of a return (R10–R12, SOAP ``downloadAcknowledgement`` / ``downloadPesRetour`` /
    ``downloadChorus``); the first download takes it out of its remaining list (D11). Downloading again
    still works.

    Acknowledgements: ``DOCUMENT_NOT_FOUND`` for an unknown or foreign document, ``ACK_BUILD_ERROR`` when the
    document has no acknowledgement yet. PES_Retour / Chorus: ``DOCUMENT_NOT_FOUND`` for an unknown id or one
    of a subscriber the caller may not fetch returns of. ``CONTENT_RETRIEVAL`` when the stored bytes are gone.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown return kind {kind!r}")
    with ctx.db.write() as session:
        if kind == "ack":
            document, _ = visible_document(session, principal, public_id)
            item = session.scalar(
                select(ReturnItem).where(ReturnItem.document_id == document.id, ReturnItem.kind == "ack")
                .order_by(ReturnItem.id.desc()).limit(1))
            if item is None:
                raise ParafeError(E.ACK_BUILD_ERROR, detail="no Helios acknowledgement for this document yet")
        else:
            wanted = parse_id(public_id)
            candidates = session.scalars(select(ReturnItem).where(
                ReturnItem.public_id == wanted, ReturnItem.kind == kind,
                ReturnItem.subscriber_id.in_([a.subscriber_id for a in principal.accounts]))).all()
            item = None
            for candidate in candidates:
                account = principal.account_in(candidate.subscriber_id)
                if account is not None and _may_fetch_subscriber_returns(session, account):
                    item = candidate
                    break
            if item is None:
                raise ParafeError(E.DOCUMENT_NOT_FOUND)
        data = _read(ctx, item)
        now = utcnow()
        if kind == "ack":  # the document leaves the list: every acknowledgement of it is consumed
            for ack in session.scalars(select(ReturnItem).where(
                    ReturnItem.document_id == item.document_id, ReturnItem.kind == "ack",
                    ReturnItem.downloaded_at.is_(None))):
                ack.downloaded_at = now
        elif item.downloaded_at is None:
            item.downloaded_at = now
        return ReturnContent(public_id=item.public_id, name=item.name, data=data)


def latest_ack(ctx: AppContext, document_id: int) -> tuple[str, bytes] | None:
    """(name, bytes) of a document's latest acknowledgement, or None (for ``download`` with ``acquit``; no
    rights check here: the caller has already checked the document is visible)."""
    with ctx.db.read() as session:
        item = session.scalar(
            select(ReturnItem).where(ReturnItem.document_id == document_id, ReturnItem.kind == "ack")
            .order_by(ReturnItem.id.desc()).limit(1))
        if item is None:
            return None
        return item.name, _read(ctx, item)
