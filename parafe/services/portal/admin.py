"""Administration of one subscriber by its own administrator (the portal's admin pages).

:mod:`parafe.services.admin.platform` is the operators' API (no caller check: the command line runs as the operator).
Here every function first checks that the caller is an administrator *of that subscriber* (``is_admin`` on
their account there; ``AUTH_ACCESS_DENIED`` otherwise — a subscriber the caller has no account in looks the same
as an unknown one) and then delegates to :mod:`parafe.services.admin.platform`, plus the few read queries the pages
need (a circuit as an editable definition, users with their roles and certificates, groups).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from parafe.context import AppContext
from parafe.db.models import (
    Circuit,
    CircuitRole,
    CircuitStep,
    Group,
    GroupMember,
    StepMember,
    Subscriber,
    User,
    UserCertificate,
)
from parafe.domain.errors import E, ParafeError
from parafe.services import circuits
from parafe.services.access.auth import Account, Principal
from parafe.services.admin import platform as admin


def admin_accounts(principal: Principal) -> list[Account]:
    """The caller's accounts that administer a subscriber."""
    return [a for a in principal.accounts if a.is_admin]


def require_admin(principal: Principal, siren: str) -> Account:
    account = principal.account_for(str(siren).strip())
    if account is None or not account.is_admin:
        raise ParafeError(E.AUTH_ACCESS_DENIED, detail=f"not an administrator of {siren}")
    return account


@dataclass
class UserLine:
    email: str
    firstname: str
    lastname: str
    phone: str | None
    quality: str | None
    admin: bool
    authentication_type: str
    active: bool
    groups: list[str] = field(default_factory=list)
    roles: list[tuple[str, str]] = field(default_factory=list)  # (circuit key, role)
    certificates: list[tuple[str, str, datetime | None]] = field(default_factory=list)  # (sha256, subject, end)


def users(ctx: AppContext, principal: Principal, siren: str) -> list[UserLine]:
    """The subscriber's users with groups, circuit roles and certificates (four queries)."""
    account = require_admin(principal, siren)
    with ctx.db.read() as session:
        rows = session.scalars(select(User).where(User.subscriber_id == account.subscriber_id)
                               .order_by(User.lastname, User.firstname, User.email)).all()
        by_id = {u.id: UserLine(u.email, u.firstname, u.lastname, u.phone, u.quality, u.is_admin,
                                u.authentication_type, u.active) for u in rows}
        for user_id, name in session.execute(
                select(GroupMember.user_id, Group.name).join(Group, Group.id == GroupMember.group_id)
                .where(Group.subscriber_id == account.subscriber_id).order_by(Group.name)):
            if user_id in by_id:
                by_id[user_id].groups.append(name)
        for user_id, key, role in session.execute(
                select(CircuitRole.user_id, Circuit.key, CircuitRole.role)
                .join(Circuit, Circuit.id == CircuitRole.circuit_id)
                .where(Circuit.subscriber_id == account.subscriber_id, Circuit.on_demand.is_(False))
                .order_by(Circuit.key, CircuitRole.role)):
            if user_id in by_id:
                by_id[user_id].roles.append((key, role))
        for user_id, fp, subject, end in session.execute(
                select(UserCertificate.user_id, UserCertificate.fingerprint, UserCertificate.subject,
                       UserCertificate.not_after).join(User, User.id == UserCertificate.user_id)
                .where(User.subscriber_id == account.subscriber_id).order_by(UserCertificate.id)):
            if user_id in by_id:
                by_id[user_id].certificates.append((fp, subject, end))
        return list(by_id.values())


def user(ctx: AppContext, principal: Principal, siren: str, email: str) -> UserLine:
    wanted = email.strip().lower()
    for line in users(ctx, principal, siren):
        if line.email == wanted:
            return line
    raise ParafeError(E.ADMIN_USER_UNKNOWN, email=email)


def create_user(ctx: AppContext, principal: Principal, siren: str, spec: admin.UserSpec) -> None:
    require_admin(principal, siren)
    admin.create_user(ctx, siren, spec)


def update_user(ctx: AppContext, principal: Principal, siren: str, spec: admin.UserSpec) -> None:
    require_admin(principal, siren)
    admin.update_user(ctx, siren, spec)


def delete_user(ctx: AppContext, principal: Principal, siren: str, email: str) -> None:
    account = require_admin(principal, siren)
    if email.strip().lower() == account.email.lower():
        raise ParafeError(E.NO_PERMISSION, detail="an administrator cannot delete their own account")
    admin.delete_user(ctx, siren, email)


def add_certificate(ctx: AppContext, principal: Principal, siren: str, email: str, data: bytes) -> str:
    require_admin(principal, siren)
    return admin.add_certificate(ctx, siren, email, data)


def remove_certificate(ctx: AppContext, principal: Principal, siren: str, email: str, fingerprint: str) -> None:
    require_admin(principal, siren)
    admin.remove_certificate(ctx, siren, email, fingerprint)


def groups(ctx: AppContext, principal: Principal, siren: str) -> list[tuple[str, list[str]]]:
    """The subscriber's groups with their members' e-mails (one query)."""
    account = require_admin(principal, siren)
    out: dict[str, list[str]] = {}
    with ctx.db.read() as session:
        for name, email in session.execute(
                select(Group.name, User.email).outerjoin(GroupMember, GroupMember.group_id == Group.id)
                .outerjoin(User, User.id == GroupMember.user_id)
                .where(Group.subscriber_id == account.subscriber_id).order_by(Group.name, User.email)):
            bucket = out.setdefault(name, [])
            if email:
                bucket.append(email)
    return list(out.items())


def create_group(ctx: AppContext, principal: Principal, siren: str, name: str, members: list[str]) -> None:
    require_admin(principal, siren)
    if not name.strip():
        raise ParafeError(E.BAD_REQUEST, reason="le nom du groupe est obligatoire")
    admin.create_group(ctx, siren, name, members)


def circuit_list(ctx: AppContext, principal: Principal, siren: str) -> list[dict[str, Any]]:
    require_admin(principal, siren)
    return admin.list_circuits(ctx, siren)


def circuit_spec(ctx: AppContext, principal: Principal, siren: str, key: str) -> dict[str, Any]:
    """A circuit as the definition :func:`parafe.services.admin.platform.define_circuit` takes (members as e-mails or
    ``group:<name>``), for the edit form."""
    account = require_admin(principal, siren)
    with ctx.db.read() as session:
        circuit = session.scalar(select(Circuit).where(
            Circuit.subscriber_id == account.subscriber_id, Circuit.key == key, Circuit.on_demand.is_(False)))
        if circuit is None:
            raise ParafeError(E.ADMIN_CIRCUIT_UNKNOWN, key=key)
        steps = session.scalars(select(CircuitStep).where(CircuitStep.circuit_id == circuit.id)
                                .order_by(CircuitStep.position)).all()
        members: dict[int, list[str]] = {s.id: [] for s in steps}
        if steps:
            for step_id, email, group, member_email in session.execute(
                    select(StepMember.step_id, User.email, Group.name, StepMember.email)
                    .outerjoin(User, User.id == StepMember.user_id).outerjoin(Group, Group.id == StepMember.group_id)
                    .where(StepMember.step_id.in_(list(members))).order_by(StepMember.id)):
                members[step_id].append(email or (f"group:{group}" if group else member_email or ""))
        agents = list(session.scalars(select(User.email).join(CircuitRole, CircuitRole.user_id == User.id).where(
            CircuitRole.circuit_id == circuit.id, CircuitRole.role == "agent").order_by(User.email)))
        return {"key": circuit.key, "name": circuit.name, "type": circuit.type, "pes_pj": circuit.pes_pj,
                "settings": dict(circuit.settings or {}), "metadata": circuit.metadata_model,
                "steps": [{"kind": s.kind, "members": members[s.id], "config": dict(s.config or {})} for s in steps],
                "agents": agents}


def define_circuit(ctx: AppContext, principal: Principal, siren: str, spec: dict[str, Any]) -> str:
    require_admin(principal, siren)
    return admin.define_circuit(ctx, siren, spec)


def delete_circuit(ctx: AppContext, principal: Principal, siren: str, key: str) -> None:
    require_admin(principal, siren)
    admin.delete_circuit(ctx, siren, key)


def set_metadata_model(ctx: AppContext, principal: Principal, siren: str, key: str,
                       fields: list[dict[str, Any]] | None) -> None:
    require_admin(principal, siren)
    admin.set_metadata_model(ctx, siren, key, fields)


def sms_history(ctx: AppContext, principal: Principal, siren: str, circuit: str | None,
                month: str | None) -> list[circuits.SmsEntry]:
    require_admin(principal, siren)
    return circuits.sms_history(ctx, principal, siren, circuit, month)


def subscriber_name(ctx: AppContext, principal: Principal, siren: str) -> str:
    account = require_admin(principal, siren)
    with ctx.db.read() as session:
        sub = session.get(Subscriber, account.subscriber_id)
        return sub.name if sub else siren
