"""Huey tasks of Parafe: the periodic ones (daily purge, digest, S²LOW PES_Retour fetch, SMS status) and
"execute outbox row N", which earlier versions queued (the executors of :mod:`parafe.jobs.runtime` now claim the
rows themselves; messages left in a queue still run).

The task bodies need the process's :class:`~parafe.context.AppContext`, installed by
:mod:`parafe.jobs.runtime` when a worker starts.
"""

from __future__ import annotations

import logging

from huey import Huey, crontab

log = logging.getLogger(__name__)

EXECUTE = "parafe_execute"
PURGE = "parafe_purge"
DIGEST = "parafe_digest"
SMS_STATUS = "parafe_sms_status"
S2LOW_RETOURS = "parafe_s2low_retours"


def register(huey: Huey) -> None:
    """Register the tasks on ``huey`` (once per instance)."""

    @huey.task(name=EXECUTE)
    def execute_outbox(item_id: int) -> None:
        from parafe.jobs import outbox
        from parafe.jobs.runtime import current_context

        outbox.execute(current_context(), item_id)

    @huey.periodic_task(crontab(hour="3", minute="17"), name=PURGE)
    def purge_daily() -> None:
        from parafe.jobs.runtime import current_context
        from parafe.jobs.schedule import purge

        report = purge(current_context())
        log.info("purge: %s", report)

    @huey.periodic_task(crontab(hour="6", minute="5"), name=DIGEST)
    def digest_daily() -> None:
        """The daily digest of documents waiting for each person (issue 20)."""
        from parafe.jobs.runtime import current_context
        from parafe.jobs.schedule import daily_digest

        log.info("digest: %s", daily_digest(current_context()))

    @huey.periodic_task(crontab(minute="*"), name=S2LOW_RETOURS)
    def s2low_retours() -> None:
        """PES_Retour from S²LOW: each account is polled every ``PARAFE_S2LOW_POLL_SECONDS`` (checked each
        minute; one process polls an account per period)."""
        from parafe.config import workflow_settings

        if workflow_settings().helios_transport != "s2low":
            return
        from parafe.jobs.runtime import current_context
        from parafe.services.helios.s2low import poll_retours

        report = poll_retours(current_context())
        if report.accounts:
            log.info("S2LOW PES_Retour: %s", report)

    @huey.periodic_task(crontab(minute="*"), name=SMS_STATUS)
    def sms_status() -> None:
        """Delivery status of the SMS sent through OVHcloud (``services.sms_deliveries.poll_deliveries``)."""
        from parafe.jobs.runtime import current_context
        from parafe.services.otp.sms_deliveries import poll_deliveries

        changed = poll_deliveries(current_context())
        if changed:
            log.info("SMS status: %s deliveries changed", changed)

