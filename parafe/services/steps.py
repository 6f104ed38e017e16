"""Acting on a step: the API the portal and the connectors call (visa, signature, refusal, pending work).

Each action is one transaction (:func:`parafe.workflow.engine.workflow_tx`) that locks the document, checks it
is still at the step the caller acts on — the first member who acts decides, a second one gets
``STEP_NOT_ACTIONABLE`` —, writes the state and its history entry (labels of DECISIONS D4, the actor being the
user) and moves the document on. Refusals and rejections store their message in ``Document.refusal_message``
(read back by ``getRefusalMessage``, services.lifecycle) and in the history entry's comment.

- :func:`approve_visa` / :func:`reject_visa` — visa steps (``Visa approuvé`` / ``Visa désapprouvé``);
  :func:`approve_visas` — the bulk visa (each document in its own transaction);
- :func:`sign` — a signature produced elsewhere (browser, remote signing): the signed PDF must be the current
  version plus exactly one valid signature, made with a certificate of the signer (232); for a PES, the signed
  PES must verify; for an office document, the detached XAdES must verify over the exact stored document with
  a valid certificate of a trusted CA that belongs to the signer (errors 230-234,
  :func:`parafe.workflow.verification.check_office_signature`), and its verification report is kept with the
  document;
- :func:`sign_with_signer` — sign on the server with the person's own key (PKCS#12 / PKCS#11 signer);
- :func:`refuse` — signature steps (``Refusé``);
- :func:`pending_for` — the documents waiting for the caller's visa or signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import Circuit, Document, User
from parafe.domain.circuits import StepKind
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import State, label
from parafe.services import delegations
from parafe.services.access.auth import Account, Principal
from parafe.services.access.rights import visible_document
from parafe.signing.keys import ServerSigner
from parafe.workflow import engine, signatures, verification
from parafe.workflow.engine import record, workflow_tx
from parafe.workflow.members import actor_user_ids, may_act

_WAITING = {StepKind.VISA.value: State.SENT_FOR_VISA.value, StepKind.SIGNATURE.value: State.SENT_FOR_SIGN.value}


@dataclass(frozen=True)
class PendingDocument:
    id: int
    name: str
    circuit: str
    label: str
    action: str  # visa | signature
    state: str  # history label of the current state
    deposited_at: datetime
    depositor: str


def _acting(session: Session, principal: Principal, document_id: int | str, kind: StepKind,
            ) -> tuple[Document, Account]:
    """The document, locked, at a ``kind`` step the caller may act on (as a member, or by an active absence
    delegation of a member, :mod:`parafe.services.delegations`) — else a catalogue error."""
    document, account = visible_document(session, principal, document_id, for_update=True)
    step = engine.current_step(session, document)
    if step is None or step.kind != kind.value or document.state != _WAITING[kind.value]:
        raise ParafeError(E.STEP_NOT_ACTIONABLE, detail=f"state {document.state}, step {document.current_step}")
    if not may_act(session, account.user_id, step) and delegations.behalf_of(session, account, step) is None:
        raise ParafeError(E.STEP_NOT_ACTIONABLE, detail="not a member of the current step")
    return document, account


def _noted(session: Session, document: Document, account: Account, comment: str | None) -> str | None:
    """The history comment: « Par délégation de … » first when the account acts for an absent member."""
    step = engine.current_step(session, document)
    if step is None or may_act(session, account.user_id, step):
        return comment
    return delegations.behalf_comment(delegations.behalf_of(session, account, step), comment)


def _comment(comment: str | None) -> str | None:
    if comment is None or not comment.strip():
        return None
    if len(comment) > 4000:
        raise ParafeError(E.BAD_REQUEST, reason="le commentaire ne doit pas excéder 4000 caractères")
    return comment.strip()


def _reason(message: str | None) -> str:
    text = _comment(message)
    if text is None:
        raise ParafeError(E.REASON_REQUIRED)
    return text


def approve_visa(ctx: AppContext, principal: Principal, document_id: int | str, comment: str | None = None) -> None:
    """The member approves the visa: ``Visa approuvé`` (``Validé`` with the v3.4 labels), next step."""
    text = _comment(comment)
    with workflow_tx(ctx) as session:
        document, account = _acting(session, principal, document_id, StepKind.VISA)
        record(session, document, State.APPROVED, actor=account.full_name, user_id=account.user_id,
               comment=_noted(session, document, account, text))
        engine.advance(ctx, session, document)


@dataclass(frozen=True)
class VisaOutcome:
    id: int
    name: str
    ok: bool
    message: str | None = None


def approve_visas(ctx: AppContext, principal: Principal, document_ids: list[int], comment: str | None = None,
                  ) -> list[VisaOutcome]:
    """Bulk visa: :func:`approve_visa` on each document, each in its own transaction (one document already
    visaed by a colleague, or refused meanwhile, does not stop the others); the outcome of each, in order.
    ``BULK_VISA_EMPTY`` when no id names a document waiting for the caller's visa."""
    text = _comment(comment)
    wanted = list(dict.fromkeys(int(i) for i in document_ids))
    names: dict[int, str] = {}
    with ctx.db.read() as session:
        for doc_id in wanted:
            try:
                document, _ = _acting(session, principal, doc_id, StepKind.VISA)
            except ParafeError:
                continue
            names[doc_id] = document.name
    if not names:
        raise ParafeError(E.BULK_VISA_EMPTY)
    out: list[VisaOutcome] = []
    for doc_id, name in names.items():
        try:
            approve_visa(ctx, principal, doc_id, text)
        except ParafeError as error:
            out.append(VisaOutcome(doc_id, name, False, error.message))
        else:
            out.append(VisaOutcome(doc_id, name, True))
    return out


def reject_visa(ctx: AppContext, principal: Principal, document_id: int | str, message: str) -> None:
    """The member rejects the document (message required): ``Visa désapprouvé``; the circuit stops."""
    text = _reason(message)
    with workflow_tx(ctx) as session:
        document, account = _acting(session, principal, document_id, StepKind.VISA)
        document.refusal_message = text
        record(session, document, State.DISAPPROVED, actor=account.full_name, user_id=account.user_id,
               comment=_noted(session, document, account, text))
        engine.stop(ctx, session, document, "rejected")


def refuse(ctx: AppContext, principal: Principal, document_id: int | str, message: str) -> None:
    """The signer refuses to sign (message required): ``Refusé``; the circuit stops."""
    text = _reason(message)
    with workflow_tx(ctx) as session:
        document, account = _acting(session, principal, document_id, StepKind.SIGNATURE)
        document.refusal_message = text
        record(session, document, State.REFUSED, actor=account.full_name, user_id=account.user_id,
               comment=_noted(session, document, account, text))
        engine.stop(ctx, session, document, "refused")


def _snapshot(ctx: AppContext, principal: Principal, document_id: int | str) -> tuple[int, str, str, int | None]:
    """(id, kind, current blob, step position) of a document at a signature step the caller may act on."""
    with ctx.db.read() as session:
        document, _ = _acting(session, principal, document_id, StepKind.SIGNATURE)
        return (document.id, document.kind, document.signed_blob_sha256 or document.blob_sha256,
                document.current_step)


def _commit_signature(ctx: AppContext, principal: Principal, document_id: int, version: str,
                      position: int | None, *, signed_sha: str | None = None, signature_sha: str | None = None,
                      comment: str | None = None, report: dict[str, Any] | None = None) -> None:
    with workflow_tx(ctx) as session:
        document, account = _acting(session, principal, document_id, StepKind.SIGNATURE)
        if document.current_step != position or (document.signed_blob_sha256 or document.blob_sha256) != version:
            raise ParafeError(E.STEP_NOT_ACTIONABLE, detail="the document changed while it was being signed")
        if signed_sha:
            document.signed_blob_sha256 = signed_sha
        if signature_sha:
            document.signature_blob_sha256 = signature_sha
        if report is not None:
            verification.attach_report(document, report)
        record(session, document, State.SIGNED, actor=account.full_name, user_id=account.user_id,
               comment=_noted(session, document, account, _comment(comment)))
        engine.advance(ctx, session, document)


def sign(ctx: AppContext, principal: Principal, document_id: int | str, signed: bytes,
         comment: str | None = None) -> None:
    """Accept a signature produced elsewhere: the signed PDF / signed PES, or the detached XAdES signature
    of an office document. Raises ``SIGNED_DOCUMENT_INVALID`` when it does not verify."""
    doc_id, kind, version, position = _snapshot(ctx, principal, document_id)
    original = ctx.store.read_bytes(version)
    signed_sha = signature_sha = None
    kept: dict[str, Any] | None = None
    if kind == "pdf":
        signatures.verify_new_pdf_signature(ctx, original, signed)
        with ctx.db.read() as session:
            _, account = _acting(session, principal, doc_id, StepKind.SIGNATURE)
            verification.check_pdf_signer(session, signed, account.user_id, account.email)
        signed_sha = ctx.store.put_bytes(signed).sha256
    elif kind == "pes":
        try:
            valid, text = signatures.verify_pes_signature(ctx, signed)
        except Exception as exc:
            raise ParafeError(E.SIGNED_DOCUMENT_INVALID, reason="PES signé illisible", detail=str(exc)) from exc
        if not valid:
            raise ParafeError(E.SIGNED_DOCUMENT_INVALID, reason="la signature du PES est invalide", detail=text)
        signed_sha = ctx.store.put_bytes(signed).sha256
    else:
        with ctx.db.read() as session:
            document, account = _acting(session, principal, doc_id, StepKind.SIGNATURE)
            name = document.name
            report = verification.check_office_signature(ctx, session, original, signed, name, account.user_id,
                                                         account.email)
        signature_sha = ctx.store.put_bytes(signed).sha256
        kept = verification.keep_report(
            ctx, verification.office_verdict(report, name=name, verified_sha256=version,
                                             signature_sha256=signature_sha),
            document_id=doc_id, name=name, source="signature", step=position)
    _commit_signature(ctx, principal, doc_id, version, position, signed_sha=signed_sha,
                      signature_sha=signature_sha, comment=comment, report=kept)


def sign_with_signer(ctx: AppContext, principal: Principal, document_id: int | str, signer: ServerSigner,
                     comment: str | None = None, *, quality: str | None = None) -> None:
    """Sign on the server with the person's own key (PAdES with pictogram, PES XAdES-EPES, detached XAdES)."""
    doc_id, kind, version, position = _snapshot(ctx, principal, document_id)
    data = ctx.store.read_bytes(version)
    signed_sha = signature_sha = None
    if kind == "pdf":
        from parafe.signing.pades import sign_pdf

        with ctx.db.read() as session:
            held = session.get(Document, doc_id)
            at = signatures.deposit_pictogram(held.extra if held is not None else None, position)
        stamp = signatures.server_stamp(signer.common_name, quality, at=at)
        signed_sha = ctx.store.put_bytes(sign_pdf(data, signer, stamp=stamp, reason="Signature")).sha256
    elif kind == "pes":
        with ctx.db.read() as session:
            document = session.get(Document, doc_id)
            assert document is not None
            circuit = session.get(Circuit, document.circuit_id)
            mode = str((circuit.settings or {}).get("pes_signature") or "per_bordereau") if circuit else "per_bordereau"
        signed_sha = ctx.store.put_bytes(signatures.sign_pes(data, signer, mode=mode, role=quality)).sha256
    else:
        with ctx.db.read() as session:
            document = session.get(Document, doc_id)
            assert document is not None
            name = document.name
        signature_sha = ctx.store.put_bytes(signatures.sign_xades_detached(data, signer, name)).sha256
    _commit_signature(ctx, principal, doc_id, version, position, signed_sha=signed_sha,
                      signature_sha=signature_sha, comment=comment)


def pending_for(ctx: AppContext, principal: Principal) -> list[PendingDocument]:
    """Documents waiting for the caller's visa or signature, oldest first (every subscriber of the caller)."""
    out: list[PendingDocument] = []
    with ctx.db.read() as session:
        for account in principal.accounts:
            documents = session.scalars(select(Document).where(
                Document.subscriber_id == account.subscriber_id, Document.deleted_at.is_(None),
                Document.state.in_(list(_WAITING.values()))).order_by(Document.created_at, Document.id))
            for document in documents:
                step = engine.current_step(session, document)
                if step is None or _WAITING.get(step.kind) != document.state:
                    continue
                if account.user_id not in actor_user_ids(session, step) \
                        and delegations.behalf_of(session, account, step) is None:
                    continue
                circuit = session.get(Circuit, document.circuit_id)
                uploader = session.get(User, document.uploader_id) if document.uploader_id else None
                out.append(PendingDocument(
                    id=document.id, name=document.name, circuit=circuit.key if circuit else "",
                    label=document.label.name if document.label else "",
                    action="visa" if step.kind == StepKind.VISA.value else "signature",
                    state=label(State(document.state), ctx.label_set), deposited_at=document.created_at,
                    depositor=uploader.full_name if uploader else ""))
    return out
