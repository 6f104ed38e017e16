"""The composition root of the job runner: which modules' outbox kinds and which periodic tasks run in this
process (issue 19).

:mod:`parafe.jobs.outbox` imports no handler; the application (:func:`parafe.app.create_app`), the worker
(``parafe worker``) and the tools that execute jobs (``parafe dev jobs --run``) call :func:`install_jobs` at
start-up. A worker then refuses to start while a pending outbox row has a kind missing from this list
(:func:`parafe.jobs.outbox.check_registered`). The periodic tasks are declared here too
(:mod:`parafe.jobs.periodic`), with their schedule (UTC); the huey scheduler of a worker runs them.
"""

from __future__ import annotations

import threading

from parafe.jobs import outbox, periodic
from parafe.services import digest, retention
from parafe.services.documents import erasure
from parafe.services.helios import s2low
from parafe.services.oss import operations as oss_operations
from parafe.services.otp import sms_deliveries
from parafe.workflow import failures, handlers, sandbox

# The periodic tasks' names (huey task names: a queue may hold them, keep them stable).
PURGE = "parafe_purge"
DIGEST = "parafe_digest"
SMS_STATUS = "parafe_sms_status"
S2LOW_RETOURS = "parafe_s2low_retours"

_lock = threading.Lock()
_installed = False


def install_jobs() -> None:
    """Register every outbox kind of Parafe, the default give-up of the workflow's steps and the periodic tasks
    (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        # document.erase, document.deleted; oss.sign; sms.send; the workflow's kinds; sandbox.act, sandbox.pes_retour
        outbox.register(erasure, oss_operations, sms_deliveries, handlers, sandbox)
        failures.register()
        sandbox.register()  # the sandbox mode's hook on every step entered (issue 21)
        periodic.register(PURGE, retention.purge, hour="3", minute="17")  # the daily purge (D6)
        periodic.register(DIGEST, digest.daily_digest, hour="6", minute="5")  # 07:05 or 08:05 in Paris (issue 20)
        periodic.register(S2LOW_RETOURS, s2low.scheduled_poll)  # each minute; each account at its own period
        periodic.register(SMS_STATUS, sms_deliveries.poll_deliveries)  # each minute (OVHcloud delivery reports)
        _installed = True
