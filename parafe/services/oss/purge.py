"""OSS — the purge of documents whose retention is over (``dateToPurge``), and the blobs OSS rows still
reference (for the orphan sweeper)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import OssDocument, utcnow
from parafe.services.oss.model import FAILED, SIGNING, WAITING


def purge(ctx: AppContext, now: datetime | None = None) -> int:
    """Purge the documents whose ``dateToPurge`` has come: the rows no longer reference the blobs, which are
    erased from the store at once unless another row references them
    (:func:`parafe.services.documents.erasure.erase_blobs`);
    ``purgeDate`` is set. Idempotent."""
    from parafe.services.documents.erasure import erase_blobs

    moment = now or utcnow()
    count = 0
    dropped: set[str] = set()
    with ctx.db.write() as session:
        for document in session.scalars(select(OssDocument).where(
                OssDocument.date_to_purge <= moment, OssDocument.purge_date.is_(None)).with_for_update()):
            dropped.update(b for b in (document.blob_sha256, document.signed_blob_sha256, document.meta_blob_sha256)
                           if b)
            document.purge_date = moment
            document.blob_sha256 = None
            document.signed_blob_sha256 = None
            document.meta_blob_sha256 = None
            if document.status in (WAITING, SIGNING):
                document.status = FAILED
                document.error = "Document supprimé avant sa signature (durée de conservation dépassée)."
            document.updated_at = moment
            count += 1
    erase_blobs(ctx, dropped, utcnow(), label="of a purged OSS document")
    return count


def blob_references(session: Session) -> set[str]:
    """Every blob an OSS row still references (for the orphan sweeper)."""
    refs: set[str] = set()
    for row in session.execute(select(OssDocument.blob_sha256, OssDocument.signed_blob_sha256,
                                      OssDocument.meta_blob_sha256)):
        refs.update(v for v in row if v)
    return refs
