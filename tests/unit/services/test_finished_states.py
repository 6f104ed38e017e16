"""What "finished" (domain.states.FINISHED) means where the services use it: the purge and the annexes.

Issue 19: the purge, the client, the chaos check and the annexes each had their own set. « Échec du traitement »
waits for an administrator's retry, so the purge keeps its out/ entries; a refused document takes no annex.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import Document
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import State
from parafe.services import retention
from parafe.services.access.auth import principal_for_email
from parafe.services.documents.annexes import add_annex
from tests.unit.services._helpers import AGENT, deposit_pdf, upload


def _set_state(ctx: Any, document_id: int, state: State) -> None:
    with ctx.db.write() as session:
        document = session.get(Document, document_id)
        assert document is not None
        document.state = state.value


def test_purge_marks_finished_documents_only(ctx: Any, tmp_path: Path) -> None:
    refused, failed, waiting = (deposit_pdf(ctx, tmp_path) for _ in range(3))
    _set_state(ctx, refused, State.REFUSED)
    _set_state(ctx, failed, State.STEP_FAILED)
    retention.purge(ctx, days=-1)  # every document is older than the cut-off
    with ctx.db.read() as session:
        purged = {d.id: bool((d.extra or {}).get("out_purged"))
                  for d in session.scalars(select(Document).where(Document.id.in_([refused, failed, waiting])))}
    assert purged == {refused: True, failed: False, waiting: False}


@pytest.mark.parametrize("state", [State.REFUSED, State.DISAPPROVED, State.SEND_TO_HELIOS_FAILED, State.FILED])
def test_no_annex_on_a_finished_document(ctx: Any, tmp_path: Path, state: State) -> None:
    doc = deposit_pdf(ctx, tmp_path)
    principal = principal_for_email(ctx, AGENT)
    assert add_annex(ctx, principal, doc, upload(tmp_path, "avant.pdf")) == 0
    _set_state(ctx, doc, state)
    with pytest.raises(ParafeError) as info:
        add_annex(ctx, principal, doc, upload(tmp_path, "apres.pdf"))
    assert info.value.error is E.NO_PERMISSION


def test_annex_while_a_step_failed(ctx: Any, tmp_path: Path) -> None:
    doc = deposit_pdf(ctx, tmp_path)
    _set_state(ctx, doc, State.STEP_FAILED)
    assert add_annex(ctx, principal_for_email(ctx, AGENT), doc, upload(tmp_path, "piece.pdf")) == 0
