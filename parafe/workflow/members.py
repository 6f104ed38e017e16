"""Who may act on a step: its members (users, groups, plain e-mails of OTP signers) or, for a step without
members, the users holding the matching role on the circuit. The first member who acts decides (spec G-12)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.db.models import CircuitRole, CircuitStep, Delegation, Document, GroupMember, StepMember, User, utcnow
from parafe.domain.circuits import StepKind

ROLE_FOR_STEP = {StepKind.VISA.value: "valideur", StepKind.SIGNATURE.value: "signataire"}


def member_user_ids(session: Session, step: CircuitStep) -> set[int]:
    """Users named by the step (directly, through a group, or by an e-mail of one of the subscriber's users)."""
    members = list(session.scalars(select(StepMember).where(StepMember.step_id == step.id)))
    ids = {m.user_id for m in members if m.user_id is not None}
    groups = [m.group_id for m in members if m.group_id is not None]
    if groups:
        ids |= set(session.scalars(select(GroupMember.user_id).where(GroupMember.group_id.in_(groups))))
    emails = [m.email.lower() for m in members if m.email]
    if emails:
        circuit_sub = session.scalar(select(Document.subscriber_id).where(Document.circuit_id == step.circuit_id)
                                     .limit(1))
        stmt = select(User.id).where(User.email.in_(emails), User.active.is_(True))
        if circuit_sub is not None:
            stmt = stmt.where(User.subscriber_id == circuit_sub)
        ids |= set(session.scalars(stmt))
    return ids


def has_members(session: Session, step: CircuitStep) -> bool:
    return session.scalar(select(StepMember.id).where(StepMember.step_id == step.id).limit(1)) is not None


def actor_user_ids(session: Session, step: CircuitStep) -> set[int]:
    """Who may act on the step."""
    if has_members(session, step):
        return member_user_ids(session, step)
    role = ROLE_FOR_STEP.get(step.kind)
    if role is None:
        return set()
    return set(session.scalars(select(CircuitRole.user_id).where(
        CircuitRole.circuit_id == step.circuit_id, CircuitRole.role == role)))


def may_act(session: Session, user_id: int, step: CircuitStep) -> bool:
    """Whether the user (one account of the caller, ``Account.user_id``) may act on the step."""
    return user_id in actor_user_ids(session, step)


def actor_emails(session: Session, step: CircuitStep) -> list[str]:
    ids = actor_user_ids(session, step)
    if not ids:
        return []
    return sorted(set(session.scalars(select(User.email).where(User.id.in_(ids), User.active.is_(True)))))


def delegate_emails(session: Session, step: CircuitStep) -> list[str]:
    """The e-mails of the colleagues replacing one of the step's actors now (they get the « document à viser /
    à signer » mail too)."""
    role = ROLE_FOR_STEP.get(step.kind)
    if role is None:
        return []
    actors = actor_user_ids(session, step)
    if not actors:
        return []
    now = utcnow()
    stmt = (select(User.email).join(Delegation, Delegation.delegate_id == User.id)
            .join(CircuitRole, CircuitRole.user_id == User.id)
            .where(Delegation.delegator_id.in_(sorted(actors)), Delegation.starts_at <= now,
                   Delegation.ends_at > now, User.active.is_(True), CircuitRole.circuit_id == step.circuit_id,
                   CircuitRole.role == role))
    return sorted(set(session.scalars(stmt)))
