"""What the portal shows: the dashboard lists (spec §1.2.6) and the document page, read-only.

Every list is ONE query (no N+1), whatever the number of documents; visibility is the rule of
:mod:`parafe.services.access.rights` written in SQL (same subscriber, and admin, depositor or a role on the circuit).

- :func:`pending` — the documents waiting for the caller's visa or signature (the « À traiter » list), with the
  membership rule of :mod:`parafe.workflow.members` (step members, group members, e-mail members; a step without
  members falls back to the circuit role).
- :func:`categories` — the caller's circuits and labels with their document counts (the dashboard's tree:
  subscriber → circuit → label). Documents in ``Classé`` / ``Archivé`` leave the dashboard (§2.1 H20).
- :func:`documents` — one page of visible documents with filters (view, circuit, label, state code, text).
- :func:`counts` — the numbers shown on the dashboard tabs.
- :func:`deposit_targets` — the circuits the caller may deposit into (agent role or subscriber admin).
- :func:`document_view` — everything the document page shows, and the actions the caller may take.
- :func:`annex_content` / :func:`original_content` — the annexes and the original (unsigned) version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, false, func, literal, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from parafe.context import AppContext
from parafe.db.models import (
    Annex,
    Circuit,
    CircuitRole,
    CircuitStep,
    Document,
    GroupMember,
    HistoryEntry,
    Label,
    MetadataValue,
    StepMember,
    Subscriber,
    User,
    utcnow,
)
from parafe.domain.circuits import StepKind
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import DELETABLE, State, label, states_for_search_code
from parafe.services import delegations
from parafe.services.access.auth import Account, Principal
from parafe.services.access.rights import AGENT, visible_clause, visible_document
from parafe.services.documents.downloads import Content, media_type_for
from parafe.services.documents.lifecycle import may_act as may_act_as_depositor
from parafe.workflow.members import ROLE_FOR_STEP, actor_user_ids

# States that have left the dashboard (spec §2.1 H20: « n'apparaît plus sur le tableau de bord »).
OFF_DASHBOARD = (State.FILED.value, State.ARCHIVED.value)
WAITING = {StepKind.VISA.value: State.SENT_FOR_VISA.value, StepKind.SIGNATURE.value: State.SENT_FOR_SIGN.value}
VIEWS = ("a-traiter", "en-cours", "deposes", "classes", "tous")
PER_PAGE = 25

STEP_LABELS = {
    StepKind.VISA.value: "Visa",
    StepKind.SIGNATURE.value: "Signature",
    StepKind.SERVER_SIGNATURE.value: "Signature serveur",
    StepKind.OTP_SIGNATURE.value: "Signature OTP (code SMS ou courriel)",
    StepKind.SIGNATURE_VERIFICATION.value: "Vérification de la signature",
    StepKind.METADATA.value: "Définition des métadonnées",
    StepKind.DIGIPOSTE.value: "Digiposte",
    StepKind.MAILEVA.value: "Maileva",
    StepKind.HELIOS.value: "Transmission à Hélios",
    StepKind.ARCHIVE.value: "Archivage",
    StepKind.FILING.value: "Classement",
}


@dataclass(frozen=True)
class DocumentRow:
    id: int
    name: str
    kind: str
    state: str
    state_label: str
    siren: str
    circuit_key: str
    circuit_name: str
    label: str
    deposited_at: datetime
    depositor: str
    action: str | None = None  # visa | signature: waiting for the caller


@dataclass(frozen=True)
class LabelCount:
    name: str
    count: int


@dataclass
class CircuitCategory:
    siren: str
    subscriber: str
    key: str
    name: str
    count: int = 0
    labels: list[LabelCount] = field(default_factory=list)


@dataclass(frozen=True)
class Counts:
    to_visa: int
    to_sign: int
    in_progress: int
    deposited: int


@dataclass(frozen=True)
class Filters:
    view: str = "en-cours"
    siren: str | None = None
    circuit: str | None = None
    label: str | None = None
    state: str | None = None  # a search code of spec §2.2 (Prepared, SentForSign, …)
    text: str | None = None
    page: int = 1


@dataclass(frozen=True)
class Page:
    rows: list[DocumentRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


# --- SQL building blocks ---------------------------------------------------------------------------------------

def _accounts(principal: Principal, siren: str | None) -> list[Account]:
    accounts = list(principal.accounts)
    if siren:
        accounts = [a for a in accounts if a.siren == siren]
    return accounts


def _visible_any(principal: Principal, siren: str | None = None) -> ColumnElement[bool]:
    clauses = [visible_clause(a) for a in _accounts(principal, siren)]
    return or_(*clauses) if clauses else false()


def _waiting_for(principal: Principal, step: Any) -> ColumnElement[bool]:
    """The document's current step (``step``, aliased CircuitStep) is a visa or signature step the caller may act
    on, and the document is waiting for it (workflow.members.actor_user_ids, in SQL)."""
    user_ids = sorted(principal.user_ids)
    emails = sorted({a.email.lower() for a in principal.accounts})
    member = aliased(StepMember)
    any_member = exists().where(member.step_id == step.id)
    me_member = exists().where(member.step_id == step.id, or_(
        member.user_id.in_(user_ids),
        member.group_id.in_(select(GroupMember.group_id).where(GroupMember.user_id.in_(user_ids))),
        and_(member.email.is_not(None), func.lower(member.email).in_(emails))))
    role_for_kind = case(*((step.kind == kind, literal(role)) for kind, role in ROLE_FOR_STEP.items()),
                         else_=literal(""))
    by_role = exists().where(CircuitRole.circuit_id == Document.circuit_id, CircuitRole.user_id.in_(user_ids),
                             CircuitRole.role == role_for_kind)
    return and_(
        or_(and_(step.kind == StepKind.VISA.value, Document.state == State.SENT_FOR_VISA.value),
            and_(step.kind == StepKind.SIGNATURE.value, Document.state == State.SENT_FOR_SIGN.value)),
        or_(me_member, and_(~any_member, by_role), delegations.delegated_clause(user_ids, step, utcnow())))


def _row_select(step: Any, waiting: ColumnElement[bool]) -> Any:
    depositor = aliased(User)
    return (select(Document.id, Document.name, Document.kind, Document.state, Subscriber.siren, Circuit.key,
                   Circuit.name, Label.name, Document.created_at, depositor.firstname, depositor.lastname,
                   depositor.email, step.kind, case((waiting, literal(1)), else_=literal(0)))
            .join(Subscriber, Subscriber.id == Document.subscriber_id)
            .join(Circuit, Circuit.id == Document.circuit_id)
            .join(Label, Label.id == Document.label_id)
            .outerjoin(depositor, depositor.id == Document.uploader_id)
            .outerjoin(step, and_(step.circuit_id == Document.circuit_id, step.position == Document.current_step)))


def _rows(ctx: AppContext, result: Any) -> list[DocumentRow]:
    rows = []
    for (doc_id, name, kind, state, siren, ckey, cname, lname, created, first, last, email, skind, mine) in result:
        action = None
        if mine and skind in WAITING and WAITING[skind] == state:  # waiting for the caller's visa or signature
            action = "visa" if skind == StepKind.VISA.value else "signature"
        depositor = f"{first or ''} {last or ''}".strip() or (email or "")
        rows.append(DocumentRow(doc_id, name, kind, state, label(State(state), ctx.label_set), siren, ckey, cname,
                                lname, created, depositor, action))
    return rows


# --- lists -----------------------------------------------------------------------------------------------------

def pending(ctx: AppContext, principal: Principal, *, siren: str | None = None, limit: int = 500,
            ) -> list[DocumentRow]:
    """Documents waiting for the caller's visa or signature, oldest first (one query)."""
    step = aliased(CircuitStep)
    waiting = _waiting_for(principal, step)
    stmt = (_row_select(step, waiting)
            .where(Document.deleted_at.is_(None), _visible_any(principal, siren), waiting)
            .order_by(Document.created_at, Document.id).limit(limit))
    with ctx.db.read() as session:
        return _rows(ctx, session.execute(stmt).all())


def _filtered(principal: Principal, f: Filters, step: Any) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Document.deleted_at.is_(None), _visible_any(principal, f.siren)]
    if f.view == "a-traiter":
        where.append(_waiting_for(principal, step))
    elif f.view == "deposes":
        where.append(Document.uploader_id.in_(sorted(principal.user_ids)))
        where.append(Document.state.not_in(OFF_DASHBOARD))
    elif f.view == "classes":
        where.append(Document.state.in_(OFF_DASHBOARD))
    elif f.view != "tous":
        where.append(Document.state.not_in(OFF_DASHBOARD))
    if f.circuit:
        where.append(Circuit.key == f.circuit)
    if f.label:
        where.append(Label.name == f.label)
    if f.state:
        states = states_for_search_code(f.state)
        if states is None:
            raise ParafeError(E.BAD_REQUEST, reason=f"état inconnu « {f.state} »")
        where.append(Document.state.in_(sorted(s.value for s in states)))
    if f.text and f.text.strip():
        text = f.text.strip().lower()
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions: list[ColumnElement[bool]] = [func.lower(Document.name).like(pattern, escape="\\"),
                      func.lower(Label.name).like(pattern, escape="\\")]
        if text.isdigit():
            conditions.append(Document.id == int(text))
        where.append(or_(*conditions))
    return where


def documents(ctx: AppContext, principal: Principal, f: Filters) -> Page:
    """One page of the caller's visible documents matching ``f``, newest first (one query, plus one count)."""
    step = aliased(CircuitStep)
    where = _filtered(principal, f, step)
    page = max(1, f.page)
    stmt = (_row_select(step, _waiting_for(principal, step)).where(*where)
            .order_by(Document.created_at.desc(), Document.id.desc())
            .limit(PER_PAGE).offset((page - 1) * PER_PAGE))
    count = (select(func.count(Document.id)).select_from(Document)
             .join(Circuit, Circuit.id == Document.circuit_id).join(Label, Label.id == Document.label_id)
             .outerjoin(step, and_(step.circuit_id == Document.circuit_id, step.position == Document.current_step))
             .where(*where))
    with ctx.db.read() as session:
        rows = _rows(ctx, session.execute(stmt).all())
        total = int(session.scalar(count) or 0)
    return Page(rows, total, page, PER_PAGE)


def categories(ctx: AppContext, principal: Principal, *, siren: str | None = None) -> list[CircuitCategory]:
    """The caller's circuits (those they have a role on, every circuit for an admin) with the labels of their
    documents still on the dashboard and the counts (one query: circuits left-joined to grouped documents)."""
    accounts = _accounts(principal, siren)
    if not accounts:
        return []
    mine = or_(*[Circuit.subscriber_id == a.subscriber_id if a.is_admin else and_(
        Circuit.subscriber_id == a.subscriber_id,
        exists().where(CircuitRole.circuit_id == Circuit.id, CircuitRole.user_id == a.user_id)) for a in accounts])
    counted = (select(Document.circuit_id.label("cid"), Label.name.label("lname"),
                      func.count(Document.id).label("n"))
               .join(Label, Label.id == Document.label_id)
               .where(Document.deleted_at.is_(None), Document.state.not_in(OFF_DASHBOARD),
                      _visible_any(principal, siren))
               .group_by(Document.circuit_id, Label.name).subquery())
    stmt = (select(Subscriber.siren, Subscriber.name, Circuit.key, Circuit.name, Circuit.on_demand,
                   counted.c.lname, counted.c.n)
            .join(Subscriber, Subscriber.id == Circuit.subscriber_id)
            .outerjoin(counted, counted.c.cid == Circuit.id)
            .where(or_(and_(mine, Circuit.on_demand.is_(False)), counted.c.n.is_not(None)))
            .order_by(Subscriber.siren, Circuit.key, counted.c.lname))
    out: dict[tuple[str, str], CircuitCategory] = {}
    with ctx.db.read() as session:
        for sub_siren, sub_name, key, name, _on_demand, lname, n in session.execute(stmt):
            cat = out.get((sub_siren, key))
            if cat is None:
                cat = out[(sub_siren, key)] = CircuitCategory(sub_siren, sub_name, key, name)
            if lname is not None and n:
                cat.labels.append(LabelCount(lname, int(n)))
                cat.count += int(n)
    return list(out.values())


def counts(ctx: AppContext, principal: Principal, *, siren: str | None = None) -> Counts:
    """Numbers of the dashboard tabs (one query)."""
    step = aliased(CircuitStep)
    waiting = _waiting_for(principal, step)
    on_board = Document.state.not_in(OFF_DASHBOARD)
    mine = Document.uploader_id.in_(sorted(principal.user_ids))
    stmt = (select(
        func.count(case((and_(waiting, step.kind == StepKind.VISA.value), Document.id))),
        func.count(case((and_(waiting, step.kind == StepKind.SIGNATURE.value), Document.id))),
        func.count(case((on_board, Document.id))),
        func.count(case((and_(on_board, mine), Document.id))))
        .select_from(Document)
        .outerjoin(step, and_(step.circuit_id == Document.circuit_id, step.position == Document.current_step))
        .where(Document.deleted_at.is_(None), _visible_any(principal, siren)))
    with ctx.db.read() as session:
        row = session.execute(stmt).one()
    return Counts(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


@dataclass(frozen=True)
class DepositTarget:
    siren: str
    subscriber: str
    key: str
    name: str
    type: str
    otp_steps: int
    labels: tuple[str, ...]


def may_deposit(ctx: AppContext, principal: Principal) -> bool:
    """Whether the caller may deposit at all (an agent role on a circuit, or a subscriber administrator): the
    portal shows « Déposer un document » only then (one query)."""
    if any(a.is_admin for a in principal.accounts):
        return True
    ids = sorted(principal.user_ids)
    if not ids:
        return False
    with ctx.db.read() as session:
        return session.scalar(select(CircuitRole.user_id).where(
            CircuitRole.user_id.in_(ids), CircuitRole.role == AGENT).limit(1)) is not None


def deposit_targets(ctx: AppContext, principal: Principal) -> list[DepositTarget]:
    """Circuits the caller may deposit into (rights.circuit_for_deposit), with their recent labels (two
    queries)."""
    clauses = [Circuit.subscriber_id == a.subscriber_id if a.is_admin else and_(
        Circuit.subscriber_id == a.subscriber_id, exists().where(
            CircuitRole.circuit_id == Circuit.id, CircuitRole.user_id == a.user_id, CircuitRole.role == AGENT))
        for a in principal.accounts]
    if not clauses:
        return []
    otp_count = (select(func.count(CircuitStep.id)).where(
        CircuitStep.circuit_id == Circuit.id, CircuitStep.kind == StepKind.OTP_SIGNATURE.value)
        .correlate(Circuit).scalar_subquery())
    stmt = (select(Subscriber.siren, Subscriber.name, Circuit.id, Circuit.key, Circuit.name, Circuit.type, otp_count)
            .join(Subscriber, Subscriber.id == Circuit.subscriber_id)
            .where(Circuit.on_demand.is_(False), or_(*clauses)).order_by(Subscriber.siren, Circuit.key))
    with ctx.db.read() as session:
        rows = session.execute(stmt).all()
        ids = [r[2] for r in rows]
        labels: dict[int, list[str]] = {}
        if ids:
            for cid, lname in session.execute(select(Label.circuit_id, Label.name).where(
                    Label.circuit_id.in_(ids)).order_by(Label.created_at.desc()).limit(2000)):
                bucket = labels.setdefault(cid, [])
                if len(bucket) < 50:
                    bucket.append(lname)
    return [DepositTarget(siren, sname, key, name, ctype, int(otp or 0), tuple(sorted(labels.get(cid, []))))
            for siren, sname, cid, key, name, ctype, otp in rows]


# --- the document page -----------------------------------------------------------------------------------------

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
    from parafe.db.models import Group

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
