"""OSS — who may use a workflow and read its documents: the caller's roles on a workflow (``agent``, ``admin``),
the subscriber's administrators, and document lookups that answer an invisible document exactly like an unknown one
(D1)."""

from __future__ import annotations

from sqlalchemy import Connection, and_, bindparam, exists, select
from sqlalchemy.orm import Session

from parafe.db.models import OssDocument, OssWorkflow, OssWorkflowMember
from parafe.domain.errors import E, ParafeError
from parafe.domain.ids import parse_id as parse_id  # re-exported: the OSS modules import it from here
from parafe.services.access.auth import Account, Principal
from parafe.services.oss.model import ADMIN, AGENT


def roles(session: Session, workflow_id: int, user_id: int) -> set[str]:
    return set(session.scalars(select(OssWorkflowMember.role).where(
        OssWorkflowMember.workflow_id == workflow_id, OssWorkflowMember.user_id == user_id)))


def _wanted(key: str | None) -> str:
    wanted = (key or "").strip()
    if not wanted:
        raise ParafeError(E.BAD_REQUEST, reason="le paramètre « workflowId » est obligatoire")
    return wanted


def _check_role(held: set[str], role: str, account: Account, wanted: str) -> None:
    if role not in held and not (role == ADMIN and account.is_admin):
        raise ParafeError(E.NO_PERMISSION, detail=f"not {role} of OSS workflow {wanted!r}")


def workflow_for(session: Session, principal: Principal, key: str | None, role: str = AGENT,
                 ) -> tuple[OssWorkflow, Account]:
    """The active workflow ``key`` and the caller's account: ``OSS_WORKFLOW_NOT_FOUND`` when unknown or of
    another subscriber, ``NO_PERMISSION`` when the caller has not the role on it."""
    wanted = _wanted(key)
    workflow = session.scalar(select(OssWorkflow).where(OssWorkflow.key == wanted, OssWorkflow.active.is_(True)))
    account = principal.account_in(workflow.subscriber_id) if workflow is not None else None
    if workflow is None or account is None:
        raise ParafeError(E.OSS_WORKFLOW_NOT_FOUND, detail=f"workflow {wanted!r}")
    _check_role(roles(session, workflow.id, account.user_id), role, account, wanted)
    return workflow, account


_WORKFLOWS = OssWorkflow.__table__
_MEMBERS = OssWorkflowMember.__table__
# the workflow and the caller's roles on it in one statement (one row per role, or one with no role)
_WORKFLOW_AND_ROLES = (
    select(_WORKFLOWS, _MEMBERS.c.user_id.label("member_user_id"), _MEMBERS.c.role.label("member_role"))
    .select_from(_WORKFLOWS.outerjoin(_MEMBERS, and_(
        _MEMBERS.c.workflow_id == _WORKFLOWS.c.id, _MEMBERS.c.user_id.in_(bindparam("user_ids", expanding=True)))))
    .where(_WORKFLOWS.c.key == bindparam("key"), _WORKFLOWS.c.active.is_(True)))


def workflow_for_deposit(conn: Connection, principal: Principal, key: str | None, role: str = AGENT,
                         ) -> tuple[OssWorkflow, Account]:
    """:func:`workflow_for` in one Core statement on a bare connection, for the deposits' hot path (issue 17:
    0.55 ms of ORM per request): the same errors; the workflow comes back detached (read-only use)."""
    wanted = _wanted(key)
    rows = conn.execute(_WORKFLOW_AND_ROLES, {"key": wanted, "user_ids": sorted(principal.user_ids) or [-1]}).all()
    account = principal.account_in(rows[0].subscriber_id) if rows else None
    if not rows or account is None:
        raise ParafeError(E.OSS_WORKFLOW_NOT_FOUND, detail=f"workflow {wanted!r}")
    _check_role({r.member_role for r in rows if r.member_user_id == account.user_id}, role, account, wanted)
    workflow = OssWorkflow(**{column.key: rows[0]._mapping[column] for column in _WORKFLOWS.c})
    return workflow, account


def can_read(session: Session, account: Account, document: OssDocument) -> bool:
    """Agents and admins of the document's workflow, and the subscriber's administrators."""
    if document.subscriber_id != account.subscriber_id:
        return False
    if account.is_admin:
        return True
    return bool(session.scalar(select(exists().where(
        OssWorkflowMember.workflow_id == document.workflow_id, OssWorkflowMember.user_id == account.user_id))))


def visible_document(session: Session, principal: Principal, document_id: int | str, *, lock: bool = False,
                     ) -> tuple[OssDocument, Account]:
    """The document if the caller may read it, else ``DOCUMENT_NOT_FOUND`` (no existence oracle)."""
    stmt = select(OssDocument).where(OssDocument.id == parse_id(document_id))
    if lock:
        stmt = stmt.with_for_update()
    document = session.scalar(stmt)
    account = principal.account_in(document.subscriber_id) if document is not None else None
    if document is None or account is None or not can_read(session, account, document):
        raise ParafeError(E.DOCUMENT_NOT_FOUND)
    return document, account

