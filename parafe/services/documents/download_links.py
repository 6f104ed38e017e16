"""Recipients' download links (spec §2.6.3 ``email_destinataire`` / ``email_CC``: « une fois le document signé, un
email sera envoyé à ces adresses avec un lien permettant de télécharger le document signé »).

A link is a capability URL ``<public URL>/telechargement/<token>``: the token carries 256 random bits
(``secrets``), only its SHA-256 is stored, so a copy of the database gives no usable link; the workflow creates
it when it mails the recipients (:mod:`parafe.workflow.recipient_links`). Whoever holds the URL downloads the
document (its signed version; the original when the circuit signed nothing) without an account or a
certificate, until ``expires_at`` (``PARAFE_DOWNLOAD_LINK_DAYS``, 30 days by default). Each use writes a history
entry of the document. Deleting or purging the document revokes the link (:mod:`parafe.services.documents.erasure`);
an unknown, expired or revoked link answers a French error (404 / 410).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from parafe.context import AppContext
from parafe.db.models import Document, DownloadLink, HistoryEntry, utcnow
from parafe.domain.errors import E, ParafeError
from parafe.services.documents.downloads import Content, media_type_for
from parafe.storage.base import BlobNotFound
from parafe.workflow.recipient_links import PATH, token_hash

__all__ = ["HISTORY_COMMENT", "PATH", "open_link", "token_hash"]

HISTORY_COMMENT = "Document téléchargé par le lien envoyé aux destinataires ({recipients})."


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def open_link(ctx: AppContext, token: str) -> Content:
    """The document a link gives (its use recorded in the document's history). Raises
    ``DOWNLOAD_LINK_INVALID`` (unknown token, 404), ``DOWNLOAD_LINK_REVOKED`` (document deleted or purged, 410)
    and ``DOWNLOAD_LINK_EXPIRED`` (410)."""
    if not token or len(token) > 128:
        raise ParafeError(E.DOWNLOAD_LINK_INVALID)
    now = utcnow()
    with ctx.db.write() as session:
        link = session.scalar(select(DownloadLink).where(DownloadLink.token_hash == token_hash(token))
                              .with_for_update())
        if link is None:
            raise ParafeError(E.DOWNLOAD_LINK_INVALID)
        if link.revoked_at is not None or link.document_id is None:
            raise ParafeError(E.DOWNLOAD_LINK_REVOKED, detail=f"link {link.id} revoked ({link.revoked_reason})")
        if _aware(link.expires_at) <= now:
            raise ParafeError(E.DOWNLOAD_LINK_EXPIRED, detail=f"link {link.id} expired")
        document = session.get(Document, link.document_id)
        if document is None or document.deleted_at is not None:
            raise ParafeError(E.DOWNLOAD_LINK_REVOKED, detail=f"document of link {link.id} is gone")
        sha = document.signed_blob_sha256 or document.blob_sha256
        try:
            size = ctx.store.size(sha)
        except BlobNotFound:
            raise ParafeError(E.CONTENT_RETRIEVAL, detail=f"blob of document {document.id} is missing") from None
        link.uses += 1
        link.last_used_at = now
        session.add(HistoryEntry(document_id=document.id, state=None, user_id=None,
                                 user_fullname=link.recipients[:255],
                                 comment=HISTORY_COMMENT.format(recipients=link.recipients), created_at=now))
        return Content(filename=document.name, media_type=media_type_for(document.name), size=size,
                       blob_sha256=sha)
