"""OSS — who may use a workflow and read its documents: the caller's roles on a workflow (``agent``, ``admin``),
the subscriber's administrators, and document lookups that answer an invisible document exactly like an unknown one
(D1)."""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from parafe.db.models import OssDocument, OssWorkflow, OssWorkflowMember
from parafe.domain.errors import E, ParafeError
from parafe.domain.ids import parse_id as parse_id  # re-exported: the OSS modules import it from here
from parafe.services.access.auth import Account, Principal
from parafe.services.oss.model import ADMIN, AGENT


def roles(session: Session, workflow_id: int, user_id: int) -> set[str]:
    return set(session.scalars(select(OssWorkflowMember.role).where(
        OssWorkflowMember.workflow_id == workflow_id, OssWorkflowMember.user_id == user_id)))


def workflow_for(session: Session, principal: Principal, key: str | None, role: str = AGENT,
                 ) -> tuple[OssWorkflow, Account]:
    """The active workflow ``key`` and the caller's account: ``OSS_WORKFLOW_NOT_FOUND`` when unknown or of
    another subscriber, ``NO_PERMISSION`` when the caller has not the role on it."""
    wanted = (key or "").strip()
    if not wanted:
        raise ParafeError(E.BAD_REQUEST, reason="le paramètre « workflowId » est obligatoire")
    workflow = session.scalar(select(OssWorkflow).where(OssWorkflow.key == wanted, OssWorkflow.active.is_(True)))
    account = principal.account_in(workflow.subscriber_id) if workflow is not None else None
    if workflow is None or account is None:
        raise ParafeError(E.OSS_WORKFLOW_NOT_FOUND, detail=f"workflow {wanted!r}")
    held = roles(session, workflow.id, account.user_id)
    if role not in held and not (role == ADMIN and account.is_admin):
        raise ParafeError(E.NO_PERMISSION, detail=f"not {role} of OSS workflow {wanted!r}")
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

