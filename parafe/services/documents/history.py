"""Document history as the web services return it: ``{userFullname, date, stateName}`` (spec §2.6.6, D4)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from parafe.context import AppContext
from parafe.domain.states import State, label
from parafe.services.access.auth import Principal
from parafe.services.access.rights import visible_document


def iso_ms(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds, as in the spec's example (``2019-12-11T09:41:10.000Z``)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def history(ctx: AppContext, principal: Principal, document_id: int | str) -> list[dict[str, Any]]:
    """The history entries of a visible document, oldest first."""
    with ctx.db.read() as session:
        document, _ = visible_document(session, principal, document_id)
        return [
            {
                "userFullname": entry.user_fullname,
                "date": iso_ms(entry.created_at),
                "stateName": label(State(entry.state), ctx.label_set) if entry.state else None,
            }
            for entry in document.history
        ]
