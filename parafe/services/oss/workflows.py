"""OSS — workflow administration: an administrator (or an operator tool, or the demo set) creates or updates a
workflow and its members (:func:`configure_workflow`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from parafe.context import AppContext
from parafe.db.models import OssWorkflow, OssWorkflowMember, Subscriber, User, utcnow
from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import Principal
from parafe.services.oss import signing
from parafe.services.oss.access import roles
from parafe.services.oss.model import ADMIN, AGENT, MODES
from parafe.signing.tsa import normalize_level


@dataclass
class WorkflowSpec:
    """An OSS workflow as an administrator configures it (:func:`configure_workflow`)."""

    key: str
    name: str
    siren: str
    agents: Sequence[str] = ()  # e-mails of users of the subscriber
    admins: Sequence[str] = ()
    modes: Sequence[str] = MODES
    signature_level: str = "B-B"
    certificate_p12: str | None = None  # absolute, or relative to $PARAFE_HOME
    certificate_password: str | None = None
    metadata_model: list[dict[str, Any]] | None = None
    pictogram: dict[str, Any] = field(default_factory=dict)  # centimetres: x, y, page, width, height
    retention_days: int = 30
    settings: dict[str, Any] = field(default_factory=dict)  # reason, location, tsa_url, sgc_certificate_days


def configure_workflow(ctx: AppContext, spec: WorkflowSpec, principal: Principal | None = None) -> int:
    """Create or update a workflow (idempotent) and set its members; returns its id.

    With a ``principal`` (the admin profile), the caller must be the subscriber's administrator or an admin of
    the existing workflow; without one (operator tools, demo set) no check is made.
    """
    bad = [m for m in spec.modes if m not in MODES]
    if bad or not spec.modes:
        raise ParafeError(E.BAD_REQUEST, reason=f"modes de signature inconnus : {', '.join(bad) or 'aucun'}")
    if spec.retention_days < 1:
        raise ParafeError(E.BAD_REQUEST, reason="la durée de conservation doit être d'au moins un jour")
    signing.workflow_placement(spec.pictogram)  # validates it
    try:
        level = normalize_level(spec.signature_level)
    except ValueError as exc:
        raise ParafeError(E.BAD_REQUEST, reason=str(exc).rstrip(".")) from None
    if level not in ("B-B", "B-T") or (level == "B-T" and not (spec.settings or {}).get("tsa_url")):
        raise ParafeError(E.BAD_REQUEST, reason="type de signature : B-B, ou B-T avec settings.tsa_url")
    with ctx.db.write() as session:
        subscriber = session.scalar(select(Subscriber).where(Subscriber.siren == spec.siren))
        if subscriber is None:
            raise ParafeError(E.SUBSCRIBER_NOT_FOUND)
        workflow = session.scalar(select(OssWorkflow).where(OssWorkflow.key == spec.key))
        if principal is not None:
            account = principal.account_in(subscriber.id)
            allowed = account is not None and (account.is_admin or (
                workflow is not None and ADMIN in roles(session, workflow.id, account.user_id)))
            if not allowed:
                raise ParafeError(E.NO_PERMISSION, detail="not an OSS admin of this subscriber")
        if workflow is not None and workflow.subscriber_id != subscriber.id:
            raise ParafeError(E.BAD_REQUEST, reason=f"l'identifiant de workflow « {spec.key} » est déjà utilisé")
        if workflow is None:
            workflow = OssWorkflow(key=spec.key, subscriber_id=subscriber.id, created_at=utcnow())
            session.add(workflow)
        workflow.name = spec.name
        workflow.modes = list(spec.modes)
        workflow.signature_level = level
        workflow.certificate_p12 = spec.certificate_p12
        workflow.certificate_password = spec.certificate_password
        workflow.metadata_model = spec.metadata_model
        workflow.pictogram = dict(spec.pictogram)
        workflow.retention_days = spec.retention_days
        workflow.settings = dict(spec.settings)
        workflow.active = True
        session.flush()
        wanted: set[tuple[int, str]] = set()
        for role, emails in ((AGENT, spec.agents), (ADMIN, spec.admins)):
            for email in emails:
                user = session.scalar(select(User).where(User.subscriber_id == subscriber.id,
                                                         User.email == email.strip().lower()))
                if user is None:
                    raise ParafeError(E.INVALID_STEP_MEMBER, detail=f"no user {email} in {spec.siren}")
                wanted.add((user.id, role))
        current = {(m.user_id, m.role): m for m in session.scalars(select(OssWorkflowMember).where(
            OssWorkflowMember.workflow_id == workflow.id))}
        for pair, member in current.items():
            if pair not in wanted:
                session.delete(member)
        for user_id, role in sorted(wanted - set(current)):
            session.add(OssWorkflowMember(workflow_id=workflow.id, user_id=user_id, role=role))
        return workflow.id
