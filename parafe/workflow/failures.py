"""A workflow step whose job failed for good, and its retry by an administrator (issue 18 point 2).

When the outbox gives up on a job of a document's step (``PARAFE_JOB_MAX_ATTEMPTS`` tries: the server signature
of a file the signer cannot read, a signing key made unusable, a vault that keeps refusing…), the document goes
to « Échec du traitement » (:attr:`State.STEP_FAILED <parafe.domain.states.State.STEP_FAILED>`) with a history
entry naming the step and the last error, and its depositor gets a mail — instead of staying « Envoyé pour
signature » forever with nothing said. The failed job (kind, payload, the state it expected) is kept in
``documents.extra["failed_job"]``.

:func:`retry` (``parafe admin document retry <id>``, the portal's « Relancer » button for the subscriber's
administrators, :func:`parafe.services.documents.lifecycle.retry_failed_step`) puts the document back in the
state the job expects, writes it in the history with who retried, and queues the job again.

The Helios jobs keep their own give-up (« Échec de l'envoi à FAST », …), the mails and connector jobs theirs.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import Document, OutboxItem, utcnow
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import ACTOR_AUTOMATIC, State
from parafe.jobs import outbox
from parafe.workflow.engine import lock_document, record, workflow_tx

log = logging.getLogger(__name__)

# The jobs of a document's steps, and how the history names them.
STEP_JOBS: dict[str, str] = {
    "workflow.start": "L'entrée dans le circuit",
    "workflow.resume": "La reprise du circuit",
    "sign.server": "La signature serveur",
    "sign.otp": "La signature OTP",
    "pes.verify": "La vérification de la signature du PES",
    "verify.signature": "La vérification de la signature",
    "digiposte.send": "Le dépôt Digiposte",
    "maileva.send": "L'envoi Maileva",
    "archive.send": "L'archivage",
}


def step_failed(ctx: AppContext, item: OutboxItem, error: str) -> None:
    """The outbox's give-up for :data:`STEP_JOBS`: « Échec du traitement », history entry, mail, job kept."""
    what = STEP_JOBS.get(item.kind, f"La tâche {item.kind}")
    with workflow_tx(ctx) as session:
        pending = outbox.lock_pending(session, item.id)
        if pending is None:
            return
        document = lock_document(session, item.document_id) if item.document_id is not None else None
        if document is not None:
            _mark(session, document, item, what, error)
        outbox.close(pending, f"abandon après {item.attempts} essais : {error}")


def _mark(session: Session, document: Document, item: OutboxItem, what: str, error: str) -> None:
    position = item.payload.get("position")
    if document.state == State.STEP_FAILED.value:
        return
    if position is not None and document.current_step != int(position):
        return  # the document moved on: a stale job
    extra = dict(document.extra or {})
    extra["failed_job"] = {"kind": item.kind, "payload": dict(item.payload), "state": document.state,
                           "error": error[:2000], "attempts": item.attempts, "at": utcnow().isoformat()}
    document.extra = extra
    record(session, document, State.STEP_FAILED, actor=ACTOR_AUTOMATIC,
           comment=f"{what} a échoué après {item.attempts} essais : {error}"[:4000])
    outbox.add(session, "mail.end", document.id, {"outcome": "step_failed"})
    log.warning("document %s: %s failed for good (%s)", document.id, item.kind, error[:300])


def retry(ctx: AppContext, document_id: int, *, actor: str, user_id: int | None = None,
          subscriber_id: int | None = None) -> str:
    """Queue the failed job of a document in « Échec du traitement » again; returns the state it is back in.

    ``subscriber_id`` limits it to one subscriber's documents (a portal administrator): another subscriber's
    document answers like an unknown one."""
    with workflow_tx(ctx) as session:
        document = lock_document(session, document_id)
        if document is None or (subscriber_id is not None and document.subscriber_id != subscriber_id):
            raise ParafeError(E.DOCUMENT_NOT_FOUND)
        extra = dict(document.extra or {})
        failed = extra.get("failed_job")
        if document.state != State.STEP_FAILED.value or not isinstance(failed, dict):
            raise ParafeError(E.DOCUMENT_NOT_IN_ERROR)
        back = State(str(failed["state"]))
        what = STEP_JOBS.get(str(failed["kind"]), str(failed["kind"]))
        extra.pop("failed_job")
        extra["retries"] = int(extra.get("retries") or 0) + 1
        document.extra = extra
        record(session, document, back, actor=actor, user_id=user_id,
               comment=f"Traitement relancé par {actor} ({what[0].lower()}{what[1:]}).")
        outbox.add(session, str(failed["kind"]), document.id, dict(failed.get("payload") or {}))
        return back.value


def register() -> None:
    """Make :func:`step_failed` the outbox's give-up of every step job that has none of its own."""
    for kind in STEP_JOBS:
        outbox.default_give_up(kind, step_failed)
