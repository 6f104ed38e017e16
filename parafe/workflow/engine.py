"""The workflow engine: a document moves through the ordered steps of its circuit.

Every function here runs inside ONE write transaction (:func:`workflow_tx`) that changes the document's state,
writes its history entry (labels from :mod:`parafe.domain.states`, DECISIONS D4) and adds the outbox rows of
the work that must follow; the job queue only executes those rows (docs/spec/DESIGN.md). ``Document.current_step`` is
the position of the step the document is at (``len(steps)`` once past the last one).

Entering a step (:func:`enter`):

- visa → ``Envoyé pour visa``, mail to the step's members; they approve or reject (services.steps);
- signature → ``Envoyé pour signature``, mail to the members; a PES already signed in a circuit that allows it
  (``skip_signature_if_signed``, spec §1.1.3) is verified instead (``pes.verify``) and skips the step;
- server signature → ``Envoyé pour signature`` and a ``sign.server`` job;
- OTP signature → waits for the OTP signer (services.otp); no entry (spec §2.6.6 example);
- metadata → ``Prêt à définir les métadonnées`` unless valid metadata came with the deposit;
- Digiposte / Maileva → a ``digiposte.send`` / ``maileva.send`` job once their metadata are there;
- Helios → ``En cours d'envoi`` and a ``helios.send`` job (skipped in HELIOS_SANS_TELETRANSMISSION circuits);
- archive → an ``archive.send`` job; signature verification → a ``verify.signature`` job;
- filing → ``Classé``, then the next step. Past the last step the document is ``Classé`` (written if no
  filing step did it) and the depositor (and the receivers of the deposit) get the end-of-circuit mail.

Modules that act whenever a step is entered register a hook with :func:`on_step_entered` at the composition
root (the sandbox mode of :mod:`parafe.workflow.sandbox`, issue 21); entering a step before the composition
root ran is a wiring error and fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import Circuit, CircuitStep, Document, HistoryEntry, MetadataValue, utcnow
from parafe.domain.circuits import CircuitType, StepKind
from parafe.domain.states import ACTOR_AUTOMATIC, State
from parafe.jobs import outbox
from parafe.jobs.runtime import kicking_tx

EnterFn = Callable[[AppContext, Session, Document, CircuitStep], None]
_STEPS_KEY = "parafe_circuit_steps"


workflow_tx = kicking_tx
"""A write transaction whose new outbox rows are handed to the queue right after the commit (:mod:`parafe.jobs`)."""


def lock_document(session: Session, document_id: int) -> Document | None:
    """The live document, locked for this transaction (row lock on PostgreSQL; SQLite writers are serial)."""
    return session.scalar(select(Document).where(Document.id == document_id, Document.deleted_at.is_(None))
                          .with_for_update())


def record(session: Session, document: Document, state: State | None, *, actor: str = ACTOR_AUTOMATIC,
           user_id: int | None = None, comment: str | None = None) -> HistoryEntry:
    """Write one history entry and, when ``state`` is given, make it the document's state."""
    now = utcnow()
    if state is not None:
        document.state = state.value
    document.updated_at = now
    entry = HistoryEntry(document_id=document.id, state=state.value if state is not None else None,
                         user_id=user_id, user_fullname=actor, comment=comment, created_at=now)
    session.add(entry)  # flushed with the transaction's other rows (one INSERT for a batch's entries)
    return entry


def steps_of(session: Session, document: Document) -> list[CircuitStep]:
    """The steps of the document's circuit, in order (read once per transaction and circuit: a batch of
    documents of one circuit asks for them once)."""
    cache: dict[int, list[CircuitStep]] = session.info.setdefault(_STEPS_KEY, {})
    steps = cache.get(document.circuit_id)
    if steps is None:
        steps = list(session.scalars(select(CircuitStep).where(CircuitStep.circuit_id == document.circuit_id)
                                     .order_by(CircuitStep.position, CircuitStep.id)))
        cache[document.circuit_id] = steps
    return list(steps)


def current_step(session: Session, document: Document) -> CircuitStep | None:
    if document.current_step is None:
        return None
    steps = steps_of(session, document)
    return steps[document.current_step] if 0 <= document.current_step < len(steps) else None


def start(ctx: AppContext, session: Session, document: Document) -> None:
    """Hand a deposited document to its first step (idempotent: a started document is left alone)."""
    if document.current_step is not None:
        return
    enter(ctx, session, document, 0)


def advance(ctx: AppContext, session: Session, document: Document) -> None:
    """The current step is complete: enter the next one."""
    enter(ctx, session, document, (document.current_step if document.current_step is not None else -1) + 1)


StepHook = Callable[[AppContext, Session, Document, CircuitStep], None]
_STEP_HOOKS: list[StepHook] = []


def on_step_entered(hook: StepHook) -> None:
    """Call ``hook`` in the transaction that enters a step, after the step's own entry (the composition root
    registers the sandbox mode's, :mod:`parafe.composition`); idempotent."""
    if hook not in _STEP_HOOKS:
        _STEP_HOOKS.append(hook)


def enter(ctx: AppContext, session: Session, document: Document, position: int) -> None:
    if not _STEP_HOOKS:
        raise RuntimeError("aucun module du circuit enregistré : parafe.composition.install_jobs() n'a pas été "
                           "appelée")
    steps = steps_of(session, document)
    document.current_step = position
    if position >= len(steps):
        finish(ctx, session, document)
        return
    step = steps[position]
    _ENTER[StepKind(step.kind)](ctx, session, document, step)
    for hook in _STEP_HOOKS:
        hook(ctx, session, document, step)


def finish(ctx: AppContext, session: Session, document: Document) -> None:
    """Past the last step: ``Classé`` unless already filed, and the end-of-circuit mail."""
    filed = document.state == State.FILED.value or session.scalar(select(HistoryEntry.id).where(
        HistoryEntry.document_id == document.id, HistoryEntry.state == State.FILED.value).limit(1)) is not None
    if not filed:
        record(session, document, State.FILED)
    outbox.add(session, "mail.end", document.id, {"outcome": "done"}, flush=False)


def stop(ctx: AppContext, session: Session, document: Document, outcome: str) -> None:
    """The circuit ends here (refusal, rejection, rejected signature, transmission failure): tell the depositor."""
    outbox.add(session, "mail.end", document.id, {"outcome": outcome}, flush=False)


def circuit_of(session: Session, document: Document) -> Circuit:
    circuit = session.get(Circuit, document.circuit_id)
    assert circuit is not None
    return circuit


def metadata_of(session: Session, document: Document, kind: str = "meta") -> dict[str, str]:
    rows = session.scalars(select(MetadataValue).where(MetadataValue.document_id == document.id,
                                                       MetadataValue.kind == kind)
                           .order_by(MetadataValue.position))
    return {row.name: row.value for row in rows}


# --- entering each kind of step ---------------------------------------------------------------------------------

def _enter_visa(ctx: AppContext, session: Session, document: Document, step: CircuitStep) -> None:
    record(session, document, State.SENT_FOR_VISA)
    outbox.add(session, "mail.next_actor", document.id, {"position": step.position}, flush=False)


def _enter_signature(ctx: AppContext, session: Session, document: Document, step: CircuitStep) -> None:
    circuit = circuit_of(session, document)
    settings: dict[str, Any] = dict(circuit.settings or {})
    extra = dict(document.extra or {})
    if (document.kind == "pes" and settings.get("skip_signature_if_signed")
            and extra.get("pes_signature") in ("global", "per_bordereau")):
        outbox.add(session, "pes.verify", document.id, {"position": step.position}, flush=False)
        return
    record(session, document, State.SENT_FOR_SIGN)
    outbox.add(session, "mail.next_actor", document.id, {"position": step.position}, flush=False)


def _enter_server_signature(ctx: AppContext, session: Session, document: Document, step: CircuitStep) -> None:
    record(session, document, State.SENT_FOR_SIGN)
    outbox.add(session, "sign.server", document.id, {"position": step.position}, flush=False)


def _enter_otp(ctx: AppContext, session: Session, document: Document, step: CircuitStep) -> None:
    return None  # the OTP signer acts through services.otp


def _enter_metadata(ctx: AppContext, session: Session, document: Document, step: CircuitStep) -> None:
    circuit = circuit_of(session, document)
    if circuit.metadata_model and metadata_of(session, document):
        # metadata deposited with the document (METAS_ file of a zip bundle) were checked against the model
        record(session, document, State.METADATA_DEFINED, comment="Métadonnées fournies au dépôt.")
        advance(ctx, session, document)
        return
    record(session, document, State.READY_FOR_METADATA)


_DIGIPOSTE_REQUIRED = ("DIGIPOSTE_CLIENT_ID", "DIGIPOSTE_CONTENT_TYPE")
_MAILEVA_REQUIRED = ("MAILEVA_RECEIVER_ADDR1", "MAILEVA_RECEIVER_ADDR6")


def required_metadata(kind: StepKind) -> tuple[str, ...]:
    return _DIGIPOSTE_REQUIRED if kind == StepKind.DIGIPOSTE else _MAILEVA_REQUIRED


def _enter_postal(ctx: AppContext, session: Session, document: Document, step: CircuitStep) -> None:
    kind = StepKind(step.kind)
    values = metadata_of(session, document)
    if all(values.get(name, "").strip() for name in required_metadata(kind)):
        outbox.add(session, f"{kind.value}.send", document.id, {"position": step.position}, flush=False)
        return
    record(session, document, State.READY_FOR_METADATA)


def _enter_helios(ctx: AppContext, session: Session, document: Document, step: CircuitStep) -> None:
    circuit = circuit_of(session, document)
    if circuit.type == CircuitType.HELIOS_SANS_TELETRANSMISSION.value:
        advance(ctx, session, document)
        return
    record(session, document, State.SENDING)
    outbox.add(session, "helios.send", document.id, {"position": step.position}, flush=False)


def _enter_archive(ctx: AppContext, session: Session, document: Document, step: CircuitStep) -> None:
    outbox.add(session, "archive.send", document.id, {"position": step.position}, flush=False)


def _enter_verification(ctx: AppContext, session: Session, document: Document, step: CircuitStep) -> None:
    outbox.add(session, "verify.signature", document.id, {"position": step.position}, flush=False)


def _enter_filing(ctx: AppContext, session: Session, document: Document, step: CircuitStep) -> None:
    record(session, document, State.FILED)
    advance(ctx, session, document)


_ENTER: dict[StepKind, EnterFn] = {
    StepKind.VISA: _enter_visa,
    StepKind.SIGNATURE: _enter_signature,
    StepKind.SERVER_SIGNATURE: _enter_server_signature,
    StepKind.OTP_SIGNATURE: _enter_otp,
    StepKind.METADATA: _enter_metadata,
    StepKind.DIGIPOSTE: _enter_postal,
    StepKind.MAILEVA: _enter_postal,
    StepKind.HELIOS: _enter_helios,
    StepKind.ARCHIVE: _enter_archive,
    StepKind.SIGNATURE_VERIFICATION: _enter_verification,
    StepKind.FILING: _enter_filing,
}


def at_step(session: Session, document: Document, position: Any, kind: StepKind | None = None) -> bool:
    """Whether the document is still at the step a job was created for (jobs re-check this under lock)."""
    if document.deleted_at is not None or document.current_step != position:
        return False
    if kind is None:
        return True
    step = current_step(session, document)
    return step is not None and step.kind == kind.value
