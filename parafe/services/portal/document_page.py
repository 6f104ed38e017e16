"""What the portal shows on the document page, read-only: the document, its steps, history, annexes and
metadata, the actions the caller may take (:func:`document_view`), its contents (:func:`annex_content`,
:func:`original_content`, :func:`signature_content`) and the validation report of its signatures
(:func:`verification`). A document the caller may not see is ``DOCUMENT_NOT_FOUND``, foreign ids included.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from parafe.context import AppContext
from parafe.db.models import (
    Annex,
    CircuitStep,
    Document,
    Group,
    GroupMember,
    HistoryEntry,
    MetadataValue,
    StepMember,
    Subscriber,
    User,
)
from parafe.domain.circuits import StepKind
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import DELETABLE, State, label
from parafe.services import delegations
from parafe.services.access.auth import Principal
from parafe.services.access.rights import visible_document
from parafe.services.documents.downloads import Content, media_type_for
from parafe.services.documents.lifecycle import may_act as may_act_as_depositor
from parafe.services.portal.lists import OFF_DASHBOARD, STEP_LABELS, WAITING
from parafe.workflow.members import actor_user_ids


@dataclass(frozen=True)
class HistoryLine:
    date: datetime
    actor: str
    state_label: str | None
    comment: str | None


@dataclass(frozen=True)
class StepLine:
    position: int
    kind: str
    kind_label: str
    members: tuple[str, ...]
    status: str  # done | current | todo | refused | rejected | failed | cancelled (see _step_status)


@dataclass(frozen=True)
class AnnexLine:
    position: int
    name: str
    size: int


@dataclass(frozen=True)
class MetaLine:
    name: str
    value: str
    kind: str


@dataclass
class DocumentView:
    id: int
    name: str
    kind: str
    state: str
    state_label: str
    siren: str
    subscriber: str
    circuit_key: str
    circuit_name: str
    circuit_type: str
    label: str
    depositor: str
    deposited_at: datetime
    size: int
    comment: str | None
    refusal_message: str | None
    signed: bool
    detached_signature: bool
    filed: bool
    extra: dict[str, Any]
    annexes: list[AnnexLine]
    metadata: list[MetaLine]
    history: list[HistoryLine]
    steps: list[StepLine]
    actions: frozenset[str]  # visa, signature, delete


def _step_members(session: Session, steps: list[CircuitStep]) -> dict[int, tuple[str, ...]]:
    """Display names of every step's members (one query)."""
    if not steps:
        return {}
    names: dict[int, list[str]] = {s.id: [] for s in steps}
    grouped = aliased(User)
    stmt = (select(StepMember.step_id, User.firstname, User.lastname, User.email, StepMember.email, Group.name,
                   grouped.firstname, grouped.lastname)
            .outerjoin(User, User.id == StepMember.user_id)
            .outerjoin(Group, Group.id == StepMember.group_id)
            .outerjoin(GroupMember, GroupMember.group_id == StepMember.group_id)
            .outerjoin(grouped, grouped.id == GroupMember.user_id)
            .where(StepMember.step_id.in_([s.id for s in steps])).order_by(StepMember.id))
    for step_id, first, last, email, member_email, group, gfirst, glast in session.execute(stmt):
        if email is not None:
            text = f"{first} {last}".strip() or email
        elif group is not None:
            who = f"{gfirst or ''} {glast or ''}".strip()
            text = f"groupe {group}" + (f" ({who})" if who else "")
        else:
            text = member_email or ""
        if text and text not in names[step_id]:
            names[step_id].append(text)
    return {k: tuple(v) for k, v in names.items()}


# States in which the circuit stopped at its current step (refused, rejected, failed): that step is no longer
# « en cours », and the next ones will not come.
STOPPED = {State.REFUSED.value: "refused", State.DISAPPROVED.value: "rejected",
           State.SIGNATURE_REJECTED.value: "rejected", State.STEP_FAILED.value: "failed",
           State.SEND_TO_FAST_FAILED.value: "failed", State.FAST_PROCESSING_FAILED.value: "failed",
           State.SEND_TO_HELIOS_FAILED.value: "failed"}


def _step_status(document: Document, position: int) -> str:
    """done | current | todo, or, for a stopped circuit, refused | rejected | failed (its current step) and
    cancelled (the steps after it)."""
    if document.current_step is None:
        return "done" if document.state in OFF_DASHBOARD else "todo"
    if position < document.current_step:
        return "done"
    stopped = STOPPED.get(document.state)
    if stopped is not None:
        return stopped if position == document.current_step else "cancelled"
    return "current" if position == document.current_step else "todo"


def document_view(ctx: AppContext, principal: Principal, document_id: int | str) -> DocumentView:
    """The document page of a visible document (``DOCUMENT_NOT_FOUND`` otherwise, foreign ids included)."""
    with ctx.db.read() as session:
        document, account = visible_document(session, principal, document_id)
        subscriber = session.get(Subscriber, document.subscriber_id)
        depositor = session.get(User, document.uploader_id) if document.uploader_id else None
        steps = list(session.scalars(select(CircuitStep).where(CircuitStep.circuit_id == document.circuit_id)
                                     .order_by(CircuitStep.position, CircuitStep.id)))
        members = _step_members(session, steps)
        history = [HistoryLine(h.created_at, h.user_fullname,
                               label(State(h.state), ctx.label_set) if h.state else None, h.comment)
                   for h in session.scalars(select(HistoryEntry).where(HistoryEntry.document_id == document.id)
                                            .order_by(HistoryEntry.id))]
        annexes = [AnnexLine(a.position, a.name, a.size) for a in session.scalars(
            select(Annex).where(Annex.document_id == document.id).order_by(Annex.position))]
        metadata = [MetaLine(m.name, m.value, m.kind) for m in session.scalars(
            select(MetadataValue).where(MetadataValue.document_id == document.id)
            .order_by(MetadataValue.kind, MetadataValue.position))]
        actions: set[str] = set()
        current = (steps[document.current_step] if document.current_step is not None
                   and 0 <= document.current_step < len(steps) else None)
        if current is not None and WAITING.get(current.kind) == document.state \
                and (account.user_id in actor_user_ids(session, current)
                     or delegations.behalf_of(session, account, current) is not None):
            actions.add("visa" if current.kind == StepKind.VISA.value else "signature")
        if State(document.state) in DELETABLE and may_act_as_depositor(session, account, document):
            actions.add("delete")
        if document.state == State.STEP_FAILED.value and account.is_admin:
            actions.add("retry")  # issue 18: the subscriber's administrators retry a failed step
        circuit = document.circuit
        return DocumentView(
            id=document.id, name=document.name, kind=document.kind, state=document.state,
            state_label=label(State(document.state), ctx.label_set), siren=subscriber.siren if subscriber else "",
            subscriber=subscriber.name if subscriber else "", circuit_key=circuit.key, circuit_name=circuit.name,
            circuit_type=circuit.type, label=document.label.name,
            depositor=depositor.full_name if depositor else "", deposited_at=document.created_at,
            size=document.size, comment=document.comment, refusal_message=document.refusal_message,
            signed=document.signed_blob_sha256 is not None,
            detached_signature=document.signature_blob_sha256 is not None,
            filed=document.state in OFF_DASHBOARD, extra=dict(document.extra or {}), annexes=annexes,
            metadata=metadata, history=history,
            steps=[StepLine(i, s.kind, STEP_LABELS.get(s.kind, s.kind), members.get(s.id, ()),
                            _step_status(document, i)) for i, s in enumerate(steps)],
            actions=frozenset(actions))


def annex_content(ctx: AppContext, principal: Principal, document_id: int | str, position: int) -> Content:
    """An annex of a visible document (``DOCUMENT_NOT_FOUND`` for an unknown annex too)."""
    with ctx.db.read() as session:
        document, _ = visible_document(session, principal, document_id)
        annex = session.scalar(select(Annex).where(Annex.document_id == document.id, Annex.position == position))
        if annex is None:
            raise ParafeError(E.DOCUMENT_NOT_FOUND, detail=f"annex {position}")
        return Content(filename=annex.name, media_type=media_type_for(annex.name), size=annex.size,
                       blob_sha256=annex.blob_sha256)


def original_content(ctx: AppContext, principal: Principal, document_id: int | str) -> Content:
    """The document as deposited (before any signature)."""
    with ctx.db.read() as session:
        document, _ = visible_document(session, principal, document_id)
        return Content(filename=document.name, media_type=media_type_for(document.name), size=document.size,
                       blob_sha256=document.blob_sha256)


def signature_content(ctx: AppContext, principal: Principal, document_id: int | str) -> Content:
    """The detached XAdES signature of an office document, when it has one."""
    with ctx.db.read() as session:
        document, _ = visible_document(session, principal, document_id)
        if document.signature_blob_sha256 is None:
            raise ParafeError(E.DOCUMENT_NOT_FOUND, detail="no detached signature")
        from parafe.signing.xades import signature_filename

        name = signature_filename(document.name)
        return Content(filename=name, media_type="application/xml",
                       size=ctx.store.size(document.signature_blob_sha256),
                       blob_sha256=document.signature_blob_sha256)


@dataclass(frozen=True)
class Verification:
    """The signature validation report of a document (PDF, PES or detached XAdES)."""

    kind: str
    valid: bool
    text: str
    report: dict[str, Any]


def verification(ctx: AppContext, principal: Principal, document_id: int | str) -> Verification | None:
    """Verify the signatures of a visible document's current version against the trusted CAs; None when the
    document carries no signature at all."""
    from parafe.signing.errors import SigningError
    from parafe.workflow.signatures import trust_roots

    with ctx.db.read() as session:
        document, _ = visible_document(session, principal, document_id)
        kind, name = document.kind, document.name
        current = document.signed_blob_sha256 or document.blob_sha256
        detached, original = document.signature_blob_sha256, document.blob_sha256
        facts = dict(document.extra or {})
    roots = trust_roots(ctx)
    try:
        if kind == "pdf":
            if current == original and not facts.get("pdf_signatures"):
                return None
            from parafe.signing.verify import verify_pdf

            pdf_report = verify_pdf(ctx.store.read_bytes(current), roots)
            return Verification(kind, pdf_report.valid, pdf_report.to_text(), pdf_report.to_dict())
        if kind == "pes":
            from parafe.signing.pes_verify import verify_pes

            pes_report = verify_pes(ctx.store.read_bytes(current), roots)
            if not pes_report.signed:
                return None
            return Verification(kind, pes_report.valid, pes_report.to_text(), pes_report.to_dict())
        if detached is None:
            return None
        from parafe.signing.xades import verify_xades_detached

        xades_report = verify_xades_detached(ctx.store.read_bytes(detached), ctx.store.read_bytes(current), roots)
        valid = bool(getattr(xades_report, "valid", False))
        text = xades_report.to_text() if hasattr(xades_report, "to_text") else str(xades_report)
        data = xades_report.to_dict() if hasattr(xades_report, "to_dict") else {}
        return Verification(kind, valid, str(text), dict(data))
    except (SigningError, ValueError) as exc:
        return Verification(kind, False, f"Vérification impossible pour {name} : {exc}", {})
