"""The composition root of the job runner: which modules' outbox kinds run in this process (issue 19).

:mod:`parafe.jobs.outbox` imports no handler; the application (:func:`parafe.app.create_app`), the worker
(``parafe worker``) and the tools that execute jobs (``parafe dev jobs --run``) call :func:`install_jobs` at
start-up. A worker then refuses to start while a pending outbox row has a kind missing from this list
(:func:`parafe.jobs.outbox.check_registered`).
"""

from __future__ import annotations

import threading

from parafe.jobs import outbox
from parafe.services.documents import erasure
from parafe.services.oss import operations as oss_operations
from parafe.services.otp import sms_deliveries
from parafe.workflow import failures, handlers, sandbox

_lock = threading.Lock()
_installed = False


def install_jobs() -> None:
    """Register every outbox kind of Parafe and the default give-up of the workflow's steps (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        # document.erase, document.deleted; oss.sign; sms.send; the workflow's kinds; sandbox.act, sandbox.pes_retour
        outbox.register(erasure, oss_operations, sms_deliveries, handlers, sandbox)
        failures.register()
        _installed = True
