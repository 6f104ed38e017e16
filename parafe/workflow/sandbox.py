"""Sandbox mode (issue 21): visa and signature steps complete by themselves, so that an integrator can test
every path of their software without people in the loop.

A document is in the sandbox when the whole server is (``parafe serve --sandbox``, ``PARAFE_SANDBOX``) or when
its subscriber is (``parafe admin subscriber sandbox SIREN --on``). Entering a step (:func:`on_enter`, called by
the engine) then adds a delayed ``sandbox.act`` job:

- visa: after ``PARAFE_SANDBOX_VISA_SECONDS``, « Visa approuvé » — or « Visa désapprouvé » for a share
  ``PARAFE_SANDBOX_REFUSAL_SHARE`` of the documents;
- signature: after ``PARAFE_SANDBOX_SIGNATURE_SECONDS``, a REAL signature by the server key (PAdES, PES
  XAdES-EPES or detached XAdES, as the server-signature step makes), never passed off as the signer's: the
  history entry's actor is « Parafe (bac à sable) » and its comment says so; or « Refusé » for the same share;
- Helios: the Helios simulator answers (ACK, or NACK for ``PARAFE_SANDBOX_HELIOS_NACK_SHARE``,
  :mod:`parafe.transmission.sandbox`) and a ``sandbox.pes_retour`` job drops a PES_Retour flow in the
  subscriber's returns once the acknowledgement is there.

Which documents are refused is decided from the document id and the step (a hash), so that a retried job
decides the same way.
"""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from parafe.config import workflow_settings
from parafe.context import AppContext
from parafe.db.models import CircuitStep, Document, OutboxItem, ReturnItem, Subscriber, utcnow
from parafe.db.session import get_kept
from parafe.domain.circuits import StepKind
from parafe.domain.states import State
from parafe.jobs import outbox
from parafe.jobs.outbox import handler
from parafe.transmission.returns import RETURN_ID_START
from parafe.workflow import engine, signatures
from parafe.workflow.engine import record

ACTOR = "Parafe (bac à sable)"
VISA_COMMENT = "Visa automatique (bac à sable)"
SIGN_COMMENT = ("Signature automatique par la clé du serveur Parafe (bac à sable) : ce n'est pas la signature "
                "du signataire")
REFUSAL = "Refus simulé (bac à sable)"


def in_sandbox(ctx: AppContext, session: Session, subscriber_id: int | None) -> bool:
    if ctx.settings.sandbox:
        return True
    if subscriber_id is None:
        return False
    subscriber = get_kept(session, Subscriber, subscriber_id)  # asked at every step of every document
    return bool(subscriber is not None and subscriber.sandbox)


def share_hit(share: float, *parts: object) -> bool:
    """Whether this (document, step…) falls in a share (0…1), the same way every time."""
    if share <= 0:
        return False
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def register() -> None:
    """Have the engine call :func:`on_enter` whenever a step is entered (the composition root)."""
    engine.on_step_entered(on_enter)


def on_enter(ctx: AppContext, session: Session, document: Document, step: CircuitStep) -> None:
    """Called by the engine once a step is entered: in the sandbox, schedule what people would do."""
    if not in_sandbox(ctx, session, document.subscriber_id):
        return
    kind = StepKind(step.kind)
    payload = {"position": step.position}
    if kind is StepKind.VISA and document.state == State.SENT_FOR_VISA.value:
        outbox.add(session, "sandbox.act", document.id, {**payload, "step": "visa"},
                   delay=ctx.settings.sandbox_visa_seconds)
    elif kind is StepKind.SIGNATURE and document.state == State.SENT_FOR_SIGN.value:
        outbox.add(session, "sandbox.act", document.id, {**payload, "step": "signature"},
                   delay=ctx.settings.sandbox_signature_seconds)
    elif kind is StepKind.HELIOS and document.state == State.SENDING.value:
        outbox.add(session, "sandbox.pes_retour", document.id, payload,
                   delay=3 * workflow_settings().helios_sim_delay + 1)


def _sign(ctx: AppContext, document: Document) -> tuple[str | None, str | None]:
    from parafe.workflow.handlers import current_bytes

    data = current_bytes(ctx, document)
    if document.kind == "pdf":
        signed = signatures.server_sign_pdf(ctx, data, reason="Signature automatique (bac à sable)",
                                            extra=("Bac à sable : signature du serveur",))
        return ctx.store.put_bytes(signed).sha256, None
    if document.kind == "pes":
        return ctx.store.put_bytes(signatures.sign_pes(data, signatures.server_signer(ctx))).sha256, None
    return None, ctx.store.put_bytes(signatures.sign_xades_detached(
        data, signatures.server_signer(ctx), document.name)).sha256


@handler("sandbox.act")
def _act(ctx: AppContext, item: OutboxItem) -> None:
    from parafe.workflow.handlers import _finish, _load, _position

    document = _load(ctx, item.document_id)
    position = _position(item)
    step = str(item.payload.get("step"))
    waiting = State.SENT_FOR_VISA if step == "visa" else State.SENT_FOR_SIGN
    if document is None or document.current_step != position or document.state != waiting.value:
        _finish(ctx, item, lambda s, d: None)
        return
    refused = share_hit(ctx.settings.sandbox_refusal_share, document.id, position, step)
    signed_sha = signature_sha = None
    if step == "signature" and not refused:
        signed_sha, signature_sha = _sign(ctx, document)

    def apply(session: Session, doc: Document | None) -> None:
        kind = StepKind.VISA if step == "visa" else StepKind.SIGNATURE
        if doc is None or not engine.at_step(session, doc, position, kind) or doc.state != waiting.value:
            return
        if refused:
            doc.refusal_message = REFUSAL
            record(session, doc, State.DISAPPROVED if step == "visa" else State.REFUSED, actor=ACTOR,
                   comment=REFUSAL)
            engine.stop(ctx, session, doc, "rejected" if step == "visa" else "refused")
            return
        if step == "visa":
            record(session, doc, State.APPROVED, actor=ACTOR, comment=VISA_COMMENT)
        else:
            if signed_sha:
                doc.signed_blob_sha256 = signed_sha
            if signature_sha:
                doc.signature_blob_sha256 = signature_sha
            record(session, doc, State.SIGNED, actor=ACTOR, comment=SIGN_COMMENT)
        engine.advance(ctx, session, doc)
    _finish(ctx, item, apply)


@handler("sandbox.pes_retour")
def _pes_retour(ctx: AppContext, item: OutboxItem) -> None:
    from parafe.transmission.helios_simulator import HeliosSimulator
    from parafe.workflow.handlers import _finish

    data = HeliosSimulator.pes_retour()
    sha = ctx.store.put_bytes(data).sha256

    def apply(session: Session, doc: Document | None) -> None:
        if doc is None:
            return
        row = ReturnItem(subscriber_id=doc.subscriber_id, document_id=None, public_id=0, kind="pes_retour",
                         name=f"PES_Retour_bac_a_sable_{doc.id}.xml", blob_sha256=sha, created_at=utcnow())
        session.add(row)
        session.flush()
        row.public_id = RETURN_ID_START + row.id
    _finish(ctx, item, apply)
