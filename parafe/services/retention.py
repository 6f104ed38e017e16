"""Retention: the daily purge of what Parafe no longer has to keep, one rule per kind of record, scheduled by
:mod:`parafe.composition` (huey periodic task at 03:17 UTC, or ``parafe dev purge``).

Per spec §4.2 notes / DECISIONS D6, connector files live 15 days (``PARAFE_PURGE_DAYS``):

- documents deposited through WebDAV, finished and unchanged for that long, leave ``out/`` for good: they are
  buried like a delete (tombstone ``purge``, bytes erased from the blob store,
  :mod:`parafe.services.documents.erasure`);
- PES_Retour and Chorus flows older than that and fetched (downloaded, or deleted from WebDAV) are removed,
  their bytes erased; an unfetched one stays in its remaining list (D11); acknowledgements of a live document
  stay with it (``downloadAcknowledgement``) but leave ``out/``;
- finished documents (``Classé``, ``Archivé``, refused, rejected, failed…) last changed before that are marked
  ``extra["out_purged"]``: the WebDAV ``out/`` view no longer lists them (dashboards already leave ``Classé``
  documents out: they wait for no action, spec §2.5.5);
- closed outbox rows, used or expired OTP codes and development-outbox messages older than that are deleted;
- login failures past their window (:mod:`parafe.services.access.login_throttle`), the WebDAV ``out/`` entries
  (:func:`parafe.services.webdav.out_folders.purge_webdav`), the OSS documents past their ``dateToPurge``
  (:mod:`parafe.services.oss.purge`), then the blobs nothing references any more
  (:mod:`parafe.services.blob_sweep`).

Idempotent: running it twice (two workers) changes nothing more.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update

from parafe.config import workflow_settings
from parafe.context import AppContext
from parafe.db.models import DevMessage, Document, OtpChallenge, OutboxItem, utcnow
from parafe.domain.states import FINISHED_VALUES
from parafe.services.access import login_throttle
from parafe.services.blob_sweep import sweep_orphan_blobs
from parafe.services.documents import erasure
from parafe.services.oss import purge as oss_purge
from parafe.services.webdav import out_folders

FINISHED = FINISHED_VALUES  # « Échec du traitement » is not finished: it waits for an administrator's retry


def purge(ctx: AppContext, days: int | None = None) -> dict[str, int]:
    """Run the purge; returns how many rows each rule touched."""
    cutoff = utcnow() - timedelta(days=days if days is not None else workflow_settings().purge_days)
    report: dict[str, int] = {}
    # nothing purged stays stored (issue 15): documents deposited through WebDAV whose returns leave out/ are
    # buried (tombstone, bytes erased), and so are the PES_Retour / Chorus flows leaving out/
    report["webdav_documents"] = erasure.purge_webdav_documents(ctx, cutoff, FINISHED)
    report["returns"] = erasure.purge_returns(ctx, cutoff)
    report["erasures_caught_up"] = erasure.catch_up(ctx)
    with ctx.db.write() as session:
        count = 0
        for document in session.scalars(select(Document).where(
                Document.updated_at < cutoff, Document.state.in_(sorted(FINISHED)), Document.deleted_at.is_(None))):
            extra = dict(document.extra or {})
            if not extra.get("out_purged"):
                extra["out_purged"] = True
                document.extra = extra
                count += 1
        report["documents"] = count
        for name, model, column, extra_cond in (
                ("outbox", OutboxItem, OutboxItem.done_at, OutboxItem.done_at.is_not(None)),
                ("otp_codes", OtpChallenge, OtpChallenge.created_at, OtpChallenge.status != "pending"),
                ("dev_messages", DevMessage, DevMessage.created_at, None)):
            stmt = delete(model).where(column < cutoff)
            if extra_cond is not None:
                stmt = stmt.where(extra_cond)
            result = session.execute(stmt.execution_options(synchronize_session=False))
            report[name] = int(getattr(result, "rowcount", 0) or 0)
        expired = session.execute(update(OtpChallenge).where(
            OtpChallenge.status == "pending", OtpChallenge.expires_at < cutoff).values(status="expired")
            .execution_options(synchronize_session=False))
        report["otp_expired"] = int(getattr(expired, "rowcount", 0) or 0)
    report["login_throttle"] = login_throttle.purge(ctx)  # failures older than their window (issue 18)
    # connector-specific retention: WebDAV out/ entries (15 days, spec §4.5), OSS documents (dateToPurge)
    webdav_report = out_folders.purge_webdav(ctx)
    report["webdav_signed"], report["webdav_refusals"] = webdav_report.signed, webdav_report.refusals
    report["oss_documents"] = oss_purge.purge(ctx)
    # then the files nothing references any more (purged OSS documents, refused deposits, replaced signed
    # versions…), older than the sweeper's grace period
    report["orphan_blobs"] = sweep_orphan_blobs(ctx).deleted
    if ctx.db.is_sqlite:
        # keep the query planner's statistics fresh (the search indexes need them on SQLite; PostgreSQL's
        # autovacuum does this by itself)
        # ANALYZE writes its statistics: in a write transaction (BEGIN IMMEDIATE, behind the writers' queue), not
        # in a read transaction upgraded to a write, which SQLite refuses at once ("database is locked") when
        # another process committed in between
        with ctx.db.write() as session:
            session.connection().exec_driver_sql("PRAGMA optimize")
    return report
