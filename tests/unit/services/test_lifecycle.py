"""Delete (D14, definitive: a tombstone stays) and the refusal message (D20) through the services, on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import Document, DocumentTombstone, HistoryEntry, OutboxItem, PesNomFic
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import DELETABLE, State
from parafe.services.access.auth import principal_for_email
from parafe.services.documents import lifecycle
from parafe.services.documents.deposit import DepositRequest, deposit
from tests.fixtures.files import PES_SAMPLES
from tests.unit.services._helpers import AGENT, deposit_pdf, upload


def _state(ctx: Any, doc: int, state: State, comment: str | None = None) -> None:
    with ctx.db.write() as s:
        row = s.get(Document, doc)
        assert row is not None
        row.state = state.value
        s.add(HistoryEntry(document_id=doc, state=state.value, user_fullname="x", comment=comment))


def test_delete_by_state(ctx: Any, tmp_path: Path) -> None:
    principal = principal_for_email(ctx, AGENT)
    for state in State:
        doc = deposit_pdf(ctx, tmp_path)
        _state(ctx, doc, state)
        if state in DELETABLE:
            lifecycle.delete(ctx, principal, doc)
            with ctx.db.read() as s:
                assert s.get(Document, doc) is None
                tombstone = s.get(DocumentTombstone, doc)
                assert tombstone is not None
                assert tombstone.reason == "delete"
                assert tombstone.erased_at is None
                assert s.scalar(select(OutboxItem).where(OutboxItem.kind == "document.erase",
                                                         OutboxItem.done_at.is_(None))) is not None
        else:
            with pytest.raises(ParafeError) as info:
                lifecycle.delete(ctx, principal, doc)
            assert info.value.error is E.DELETE_NOT_ALLOWED, state


def test_delete_keeps_nomfic_reserved(ctx: Any, tmp_path: Path) -> None:
    samples = sorted(PES_SAMPLES.glob("*.xml")) if PES_SAMPLES.exists() else []
    if not samples:
        pytest.skip("no PES sample")
    principal = principal_for_email(ctx, AGENT)
    for sample in samples:
        try:
            done = deposit(ctx, principal, DepositRequest(
                siren="123456789", circuit="pes", upload=upload(tmp_path, sample.name, sample.read_bytes())))
            break
        except ParafeError:
            continue
    else:
        pytest.skip("no PES sample accepted by the pes circuit")
    lifecycle.delete(ctx, principal, done.document_id)
    with ctx.db.read() as s:
        assert s.get(Document, done.document_id) is None
        row = s.get(DocumentTombstone, done.document_id)
        assert row is not None
        assert row.nom_fic
        assert s.get(PesNomFic, row.nom_fic) is not None
    with pytest.raises(ParafeError) as info:  # the triplet is free, the NomFic is not
        deposit(ctx, principal, DepositRequest(
            siren="123456789", circuit="pes", upload=upload(tmp_path, sample.name, sample.read_bytes())))
    assert info.value.error is E.PES_DUPLICATE_NOMFIC


def test_refusal_message(ctx: Any, tmp_path: Path) -> None:
    principal = principal_for_email(ctx, AGENT)
    doc = deposit_pdf(ctx, tmp_path)
    assert lifecycle.refusal_message(ctx, principal, doc) is None
    with pytest.raises(ParafeError) as info:
        lifecycle.require_refusal_message(ctx, principal, doc)
    assert info.value.error is E.NOT_REFUSED
    assert info.value.message == "Le document n'a pas été rejeté ou refusé"
    _state(ctx, doc, State.REFUSED)
    assert lifecycle.refusal_message(ctx, principal, doc) == ""  # refused without a message
    _state(ctx, doc, State.FILED)  # filed after the refusal: still refused
    _state(ctx, doc, State.REFUSED, comment="Signature impossible")
    assert lifecycle.require_refusal_message(ctx, principal, doc) == "Signature impossible"
    with pytest.raises(ParafeError) as info:
        lifecycle.refusal_message(ctx, principal_for_email(ctx, "agent@autre.parafe.test"), doc)
    assert info.value.error is E.DOCUMENT_NOT_FOUND
