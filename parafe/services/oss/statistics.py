"""OSS — supervision figures of a workflow for its administrators (documents per mode and per status)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from parafe.context import AppContext
from parafe.db.models import OssDocument
from parafe.services.access.auth import Principal
from parafe.services.oss.access import workflow_for
from parafe.services.oss.model import ADMIN


def workflow_statistics(ctx: AppContext, principal: Principal, key: str) -> dict[str, Any]:
    """Supervision figures of a workflow (admin profile): documents per mode and per status."""
    with ctx.db.read() as session:
        workflow, _ = workflow_for(session, principal, key, ADMIN)
        rows = session.execute(select(OssDocument.mode, OssDocument.status, func.count()).where(
            OssDocument.workflow_id == workflow.id).group_by(OssDocument.mode, OssDocument.status)).all()
        purged = session.scalar(select(func.count()).select_from(OssDocument).where(
            OssDocument.workflow_id == workflow.id, OssDocument.purge_date.is_not(None))) or 0
    by_mode: dict[str, dict[str, int]] = {}
    for mode, status, count in rows:
        by_mode.setdefault(str(mode), {})[str(status)] = int(count)
    return {"workflowId": workflow.key, "name": workflow.name, "documents": by_mode,
            "total": sum(sum(v.values()) for v in by_mode.values()), "purged": int(purged)}
