"""Metadata definition, Digiposte / Maileva and archive steps (simulators, D13)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import Circuit, CircuitRole, CircuitStep, Subscriber, User
from parafe.domain.circuits import CircuitType, StepKind
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import State
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import AGENT
from parafe.services.documents.metadata import upload_meta
from parafe.transmission.simstore import SimStore
from tests.fixtures.files import pdf_bytes
from tests.workflow.conftest import deposit_file, history, run_jobs, state_of, states


def make_circuit(ctx: Any, key: str, kinds: list[StepKind], model: list[dict[str, Any]] | None = None) -> None:
    with ctx.db.write() as s:
        sub = s.scalars(select(Subscriber).where(Subscriber.siren == "123456789")).one()
        agent = s.scalars(select(User).where(User.email == AGENT, User.subscriber_id == sub.id)).one()
        circuit = Circuit(subscriber_id=sub.id, key=key, name=key, type=CircuitType.BUREAUTIQUE_PDF.value,
                          settings={}, metadata_model=model)
        s.add(circuit)
        s.flush()
        for position, kind in enumerate(kinds):
            s.add(CircuitStep(circuit_id=circuit.id, position=position, kind=kind.value, config={}))
        s.add(CircuitRole(circuit_id=circuit.id, user_id=agent.id, role="agent"))


def metas(**values: str) -> bytes:
    body = "".join(f'<meta-data name="{k}" value="{v}"/>' for k, v in values.items())
    return f'<?xml version="1.0" encoding="UTF-8"?><meta-data-list>{body}</meta-data-list>'.encode()


def test_metadata_step_then_digiposte_then_archive(ctx: Any, tmp_path: Path) -> None:
    make_circuit(ctx, "coffre", [StepKind.METADATA, StepKind.DIGIPOSTE, StepKind.FILING, StepKind.ARCHIVE],
                 model=[{"name": "NUM001", "kind": "numeric"}])
    doc_id = deposit_file(ctx, tmp_path, "diplôme.pdf", pdf_bytes(), circuit="coffre")
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.READY_FOR_METADATA.value
    agent = principal_for_email(ctx, AGENT)
    with pytest.raises(ParafeError) as info:
        upload_meta(ctx, agent, doc_id, metas(NUM001="douze"))
    assert info.value.error is E.METADATA_BAD_FORMAT
    upload_meta(ctx, agent, doc_id, metas(NUM001="12", DIGIPOSTE_CLIENT_ID="001", DIGIPOSTE_CONTENT_TYPE="FDIPL",
                                          DIGIPOSTE_VALIDITY="10"))
    run_jobs(ctx)
    assert states(ctx, doc_id) == [State.PREPARED, State.READY_FOR_METADATA, State.METADATA_DEFINED, None,
                                   State.FILED, State.ARCHIVED]
    assert "Digiposte" in (history(ctx, doc_id)[3].comment or "")
    received = SimStore(ctx.settings.resolved_home / "simulators" / "digiposte").receipts()
    assert len(received) == 1
    assert received[0].info["metadata"]["DIGIPOSTE_CONTENT_TYPE"] == "FDIPL"
    assert len(SimStore(ctx.settings.resolved_home / "simulators" / "archive").receipts()) == 1


def test_maileva_waits_for_its_metadata(ctx: Any, tmp_path: Path) -> None:
    make_circuit(ctx, "courrier", [StepKind.MAILEVA, StepKind.FILING])
    doc_id = deposit_file(ctx, tmp_path, "lettre.pdf", pdf_bytes(), circuit="courrier")
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.READY_FOR_METADATA.value
    upload_meta(ctx, principal_for_email(ctx, AGENT), doc_id, metas(
        MAILEVA_RECEIVER_ADDR1="DOCAPOSTE", MAILEVA_RECEIVER_ADDR6="75000 Ivry"))
    run_jobs(ctx)
    assert states(ctx, doc_id)[-2:] == [None, State.FILED]
    assert "Maileva" in (history(ctx, doc_id)[-2].comment or "")
