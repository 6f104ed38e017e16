"""What the portal shows on the dashboard (spec §1.2.6), read-only: the lists, counts and circuits.

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

The document page is :mod:`parafe.services.portal.document_page`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, false, func, literal, or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from parafe.context import AppContext
from parafe.db.models import (
    Circuit,
    CircuitRole,
    CircuitStep,
    Document,
    GroupMember,
    Label,
    StepMember,
    Subscriber,
    User,
    utcnow,
)
from parafe.domain.circuits import StepKind
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import CIRCUIT_DONE, State, label, states_for_search_code
from parafe.services import delegations
from parafe.services.access.auth import Account, Principal
from parafe.services.access.rights import AGENT, visible_clause
from parafe.workflow.members import ROLE_FOR_STEP

# States that have left the dashboard (spec §2.1 H20: « n'apparaît plus sur le tableau de bord »).
OFF_DASHBOARD = tuple(sorted(s.value for s in CIRCUIT_DONE))
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
