"""Absence delegation (issue 20): a valideur or signataire names a colleague for a period.

During [``starts_at``, ``ends_at``) the delegate sees and acts on the visa and signature steps waiting for the
delegator, on the circuits where the delegate holds the same role (``valideur`` for a visa step, ``signataire``
for a signature step). The delegate must be an active user of the same subscriber sharing at least one of the
delegator's roles on a circuit. The history entry keeps the spec's state name and the actor's own name
(``userFullname`` on the wire); its comment starts with « Par délégation de <délégant> ».

- :func:`create` / :func:`end` / :func:`listing` — the portal's « Absence » page (the caller's own delegations);
- :func:`admin_create` / :func:`admin_list` — ``parafe admin delegation`` (any user of a subscriber);
- :func:`behalf_of` — used by :mod:`parafe.services.steps` when the actor is not a member of the step;
- :func:`parafe.workflow.members.delegate_emails` — the replacing colleagues also get the « document à viser /
  à signer » mail (the workflow sends it);
- :func:`delegated_clause` — the same rule in SQL for the dashboard lists (:mod:`parafe.services.portal.lists`).

The period is given as dates (Europe/Paris): from the start date at 00:00 to the end date at 24:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from parafe.context import AppContext
from parafe.db.models import CircuitRole, CircuitStep, Delegation, Document, GroupMember, StepMember, User, utcnow
from parafe.domain.errors import E, ParafeError
from parafe.domain.paris_time import FORMAT_DAY, PARIS, aware, paris_format, paris_today
from parafe.services.access.auth import Account, Principal
from parafe.workflow.members import ROLE_FOR_STEP, actor_user_ids

DELEGABLE_ROLES = ("valideur", "signataire")
MAX_DAYS = 366


@dataclass(frozen=True)
class DelegationLine:
    id: int
    delegator: str
    delegator_email: str
    delegate: str
    delegate_email: str
    starts_at: datetime
    ends_at: datetime
    active: bool

    @property
    def last_day(self) -> datetime:
        """The last day of the period (``ends_at`` is the next day's midnight, Paris time)."""
        return self.ends_at - timedelta(days=1)


def paris_midnight(day: date) -> datetime:
    """Midnight of ``day`` in Paris (stored as its UTC instant by :class:`~parafe.db.models.base.UTCDateTime`)."""
    return datetime.combine(day, time(0, 0), tzinfo=PARIS)


def _period(start: date, end: date, *, today: date | None = None) -> tuple[datetime, datetime]:
    today = today or paris_today(utcnow())
    if end < start:
        raise ParafeError(E.DELEGATION_PERIOD_INVALID, reason="la date de fin précède la date de début")
    if end < today:
        raise ParafeError(E.DELEGATION_PERIOD_INVALID, reason="la période est déjà terminée")
    if (end - start).days >= MAX_DAYS:
        raise ParafeError(E.DELEGATION_PERIOD_INVALID, reason="une délégation dure au plus un an")
    return paris_midnight(start), paris_midnight(end + timedelta(days=1))


def _roles(session: Session, user_id: int) -> set[tuple[int, str]]:
    return {(c, r) for c, r in session.execute(select(CircuitRole.circuit_id, CircuitRole.role).where(
        CircuitRole.user_id == user_id, CircuitRole.role.in_(DELEGABLE_ROLES)))}


def _create(session: Session, delegator: User, delegate_email: str, start: date, end: date, by: str) -> int:
    email = delegate_email.strip().lower()
    delegate = session.scalar(select(User).where(User.subscriber_id == delegator.subscriber_id,
                                                 User.email == email, User.active.is_(True)))
    if delegate is None:
        raise ParafeError(E.DELEGATE_UNKNOWN, email=delegate_email.strip() or "—")
    if delegate.id == delegator.id:
        raise ParafeError(E.DELEGATION_SELF)
    mine = _roles(session, delegator.id)
    if not mine:
        raise ParafeError(E.DELEGATOR_NO_ROLE)
    if not mine & _roles(session, delegate.id):
        raise ParafeError(E.DELEGATE_NO_SHARED_ROLE, email=delegate.email)
    starts_at, ends_at = _period(start, end)
    row = Delegation(delegator_id=delegator.id, delegate_id=delegate.id, starts_at=starts_at, ends_at=ends_at,
                     created_by=by)
    session.add(row)
    session.flush()
    return row.id


def _account(principal: Principal, siren: str | None = None) -> Account:
    accounts = [a for a in principal.accounts if siren is None or a.siren == siren]
    if not accounts:
        raise ParafeError(E.DELEGATOR_NO_ROLE)
    return accounts[0]


def create(ctx: AppContext, principal: Principal, delegate_email: str, start: date, end: date) -> int:
    """The caller delegates their visa and signature steps to a colleague for [start, end] (Paris dates)."""
    with ctx.db.write() as session:
        for account in principal.accounts:  # the first account holding a delegable role
            if _roles(session, account.user_id):
                delegator = session.get(User, account.user_id)
                assert delegator is not None
                return _create(session, delegator, delegate_email, start, end, principal.email)
    raise ParafeError(E.DELEGATOR_NO_ROLE)


def _lines(session: Session, where: ColumnElement[bool]) -> list[DelegationLine]:
    giver, taker = aliased(User), aliased(User)
    now = utcnow()
    out = []
    for d, g, t in session.execute(select(Delegation, giver, taker)
                                   .join(giver, giver.id == Delegation.delegator_id)
                                   .join(taker, taker.id == Delegation.delegate_id)
                                   .where(where).order_by(Delegation.starts_at, Delegation.id)):
        starts, ends = aware(d.starts_at), aware(d.ends_at)
        out.append(DelegationLine(d.id, g.full_name, g.email, t.full_name, t.email, starts, ends,
                                  starts <= now < ends))
    return out


def listing(ctx: AppContext, principal: Principal) -> tuple[list[DelegationLine], list[DelegationLine]]:
    """(given, received): the caller's current and future delegations."""
    ids = sorted(principal.user_ids)
    now = utcnow()
    with ctx.db.read() as session:
        given = _lines(session, and_(Delegation.delegator_id.in_(ids), Delegation.ends_at > now))
        received = _lines(session, and_(Delegation.delegate_id.in_(ids), Delegation.ends_at > now))
    return given, received


def may_delegate(ctx: AppContext, principal: Principal) -> bool:
    """Whether the caller holds a valideur or signataire role somewhere (the « Absence » page's form)."""
    with ctx.db.read() as session:
        return any(_roles(session, a.user_id) for a in principal.accounts)


def end(ctx: AppContext, principal: Principal, delegation_id: int) -> None:
    """The delegator (or the delegate) ends a delegation now; a future one is removed."""
    ids = principal.user_ids
    with ctx.db.write() as session:
        row = session.get(Delegation, delegation_id)
        if row is None or (row.delegator_id not in ids and row.delegate_id not in ids):
            raise ParafeError(E.DELEGATION_NOT_FOUND)
        now = utcnow()
        if aware(row.starts_at) > now:
            session.delete(row)
        elif aware(row.ends_at) > now:
            row.ends_at = now


def admin_create(ctx: AppContext, siren: str, delegator_email: str, delegate_email: str, start: date, end: date,
                 ) -> int:
    """``parafe admin delegation add``: the same rules as the portal, for any user of the subscriber."""
    from parafe.db.models import Subscriber

    with ctx.db.write() as session:
        sub = session.scalar(select(Subscriber).where(Subscriber.siren == siren))
        if sub is None:
            raise ParafeError(E.ADMIN_SUBSCRIBER_UNKNOWN, siren=siren)
        delegator = session.scalar(select(User).where(User.subscriber_id == sub.id,
                                                      User.email == delegator_email.strip().lower()))
        if delegator is None:
            raise ParafeError(E.ADMIN_USER_UNKNOWN, email=delegator_email)
        return _create(session, delegator, delegate_email, start, end, "admin")


def admin_list(ctx: AppContext, siren: str) -> list[DelegationLine]:
    """Current and future delegations of a subscriber's users."""
    from parafe.db.models import Subscriber

    with ctx.db.read() as session:
        sub_id = session.scalar(select(Subscriber.id).where(Subscriber.siren == siren))
        giver = select(User.id).where(User.subscriber_id == sub_id)
        return _lines(session, and_(Delegation.delegator_id.in_(giver), Delegation.ends_at > utcnow()))


def admin_end(ctx: AppContext, siren: str, delegation_id: int) -> None:
    from parafe.db.models import Subscriber

    with ctx.db.write() as session:
        row = session.get(Delegation, delegation_id)
        owner = session.get(User, row.delegator_id) if row is not None else None
        sub = session.get(Subscriber, owner.subscriber_id) if owner is not None else None
        if row is None or sub is None or sub.siren != siren:
            raise ParafeError(E.DELEGATION_NOT_FOUND)
        now = utcnow()
        if aware(row.starts_at) > now:
            session.delete(row)
        elif aware(row.ends_at) > now:
            row.ends_at = now


# --- the rule, used by the workflow and the dashboard -----------------------------------------------------------

def behalf_of(session: Session, account: Account, step: CircuitStep) -> User | None:
    """The delegator ``account`` acts for on ``step`` (a visa or signature step it is not a member of), or None.

    The account must hold the step's role on the circuit and have an active delegation from one of the step's
    actors."""
    role = ROLE_FOR_STEP.get(step.kind)
    if role is None:
        return None
    holds = session.scalar(select(CircuitRole.user_id).where(
        CircuitRole.circuit_id == step.circuit_id, CircuitRole.user_id == account.user_id,
        CircuitRole.role == role).limit(1))
    if holds is None:
        return None
    now = utcnow()
    delegators = list(session.scalars(select(Delegation.delegator_id).where(
        Delegation.delegate_id == account.user_id, Delegation.starts_at <= now, Delegation.ends_at > now)))
    if not delegators:
        return None
    actors = actor_user_ids(session, step)
    for delegator_id in delegators:
        if delegator_id in actors:
            return session.get(User, delegator_id)
    return None


def behalf_comment(delegator: User | None, comment: str | None) -> str | None:
    """The history comment of an action done by delegation: « Par délégation de X » (then the comment)."""
    if delegator is None:
        return comment
    note = f"Par délégation de {delegator.full_name}"
    return f"{note} — {comment}" if comment else note


def delegated_clause(user_ids: list[int], step: object, now: datetime) -> ColumnElement[bool]:
    """SQL: the document's current ``step`` (aliased CircuitStep) waits for someone who delegated to one of
    ``user_ids`` now, and that user holds the step's role on the circuit (:func:`behalf_of` in SQL)."""
    from sqlalchemy import case, literal

    s = step
    d = aliased(Delegation)
    member = aliased(StepMember)
    any_member = exists().where(member.step_id == s.id)  # type: ignore[attr-defined]
    role_for_kind = case(*((s.kind == kind, literal(role)) for kind, role in ROLE_FOR_STEP.items()),  # type: ignore[attr-defined]
                         else_=literal(""))
    delegate_role = exists().where(CircuitRole.circuit_id == Document.circuit_id, CircuitRole.user_id == d.delegate_id,
                                   CircuitRole.role == role_for_kind)
    delegator_role = aliased(CircuitRole)
    delegator_member = exists().where(member.step_id == s.id, or_(  # type: ignore[attr-defined]
        member.user_id == d.delegator_id,
        member.group_id.in_(select(GroupMember.group_id).where(GroupMember.user_id == d.delegator_id))))
    delegator_by_role = exists().where(delegator_role.circuit_id == Document.circuit_id,
                                       delegator_role.user_id == d.delegator_id,
                                       delegator_role.role == role_for_kind)
    return exists().where(d.delegate_id.in_(user_ids), d.starts_at <= now, d.ends_at > now, delegate_role,
                          or_(delegator_member, and_(~any_member, delegator_by_role)))


# --- shown by parafe admin delegation add|list (parafe.admin_cli) ------------------------------------------------

def describe(line: DelegationLine) -> str:
    first = paris_format(line.starts_at, FORMAT_DAY)
    last = paris_format(line.last_day, FORMAT_DAY)
    state = " (en cours)" if line.active else ""
    return (f"Délégation {line.id} : {line.delegator} <{line.delegator_email}> → {line.delegate} "
            f"<{line.delegate_email}>, du {first} au {last}{state}")


@dataclass(frozen=True)
class Colleague:
    email: str
    name: str


def colleagues(ctx: AppContext, principal: Principal) -> list[Colleague]:
    """The caller's possible delegates: active users of the same subscriber sharing at least one of the caller's
    valideur or signataire roles on a circuit (the « Absence » page's choices)."""
    out: dict[str, Colleague] = {}
    with ctx.db.read() as session:
        for account in principal.accounts:
            mine = _roles(session, account.user_id)
            if not mine:
                continue
            circuits = sorted({c for c, _ in mine})
            for user, circuit_id, role in session.execute(
                    select(User, CircuitRole.circuit_id, CircuitRole.role)
                    .join(CircuitRole, CircuitRole.user_id == User.id)
                    .where(User.subscriber_id == account.subscriber_id, User.active.is_(True),
                           User.id != account.user_id, CircuitRole.circuit_id.in_(circuits))
                    .order_by(User.lastname, User.firstname, User.email)):
                if (circuit_id, role) in mine and user.email not in out:
                    out[user.email] = Colleague(user.email, user.full_name)
    return list(out.values())
