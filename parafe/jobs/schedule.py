"""Scheduled work, as the huey periodic tasks of :mod:`parafe.jobs.tasks` (and ``parafe dev purge`` /
``parafe dev digest``) run it: the daily purge at 03:17 UTC (the retention rules are
:mod:`parafe.services.retention`'s) and the daily digest of waiting documents at 06:05 UTC
(:mod:`parafe.services.digest`).

This module only says what runs; what each run does lives in its service.
"""

from __future__ import annotations

from parafe.context import AppContext
from parafe.services import retention
from parafe.services.digest import send_digests


def purge(ctx: AppContext, days: int | None = None) -> dict[str, int]:
    """The daily purge (:func:`parafe.services.retention.purge`); returns how many rows each rule touched."""
    return retention.purge(ctx, days)


def daily_digest(ctx: AppContext) -> dict[str, int]:
    """The daily digest of waiting documents (issue 20, :mod:`parafe.services.digest`): huey periodic task at
    06:05 UTC (07:05 or 08:05 in Paris), or ``parafe dev digest``."""
    report = send_digests(ctx)
    return {"sent": report.sent, "skipped": report.skipped, "failed": report.failed}
