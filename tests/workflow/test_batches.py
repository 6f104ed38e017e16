"""Outbox rows of one kind run as a batch (issue 17, :mod:`parafe.workflow.batches`): the server signatures of
several documents are one signing batch and one closing transaction, with the same outcome as one by one; a
document that fails to sign holds back no other; an error in the closing transaction makes the rows run one by
one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import OutboxItem
from parafe.domain.states import State
from parafe.jobs import outbox
from parafe.workflow import batches, signatures
from tests.fixtures.files import pdf_bytes
from tests.workflow.conftest import deposit_file, document, run_jobs, state_of, states

SERVER_OK = [State.PREPARED, State.SENT_FOR_SIGN, State.SIGNED, State.FILED]


def _pending(ctx: Any, kind: str) -> list[int]:
    with ctx.db.read() as session:
        return list(session.scalars(select(OutboxItem.id).where(OutboxItem.kind == kind,
                                                                OutboxItem.done_at.is_(None))))


def _deposit(ctx: Any, tmp_path: Path, count: int) -> list[int]:
    return [deposit_file(ctx, tmp_path, f"lot-{i}.pdf", pdf_bytes(text=f"lot {i}"), circuit="serveur")
            for i in range(count)]


def _count_signing_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the PDF signing batches made from now on (the real signer still signs)."""
    calls: list[int] = []
    real = signatures.server_sign_pdfs

    def counting(ctx_: Any, items: Any, **kwargs: Any) -> Any:
        calls.append(len(items))
        return real(ctx_, items, **kwargs)

    monkeypatch.setattr(signatures, "server_sign_pdfs", counting)
    return calls


def test_server_signatures_of_several_documents_are_one_batch(ctx: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_signing_batches(monkeypatch)
    docs = _deposit(ctx, tmp_path, 5)
    run_jobs(ctx)
    assert calls == [5]
    for doc_id in docs:
        assert states(ctx, doc_id) == SERVER_OK
        signed = ctx.store.read_bytes(document(ctx, doc_id).signed_blob_sha256 or "")
        assert signed.count(b"/ByteRange") == 1
    with ctx.db.read() as session:
        assert session.scalars(select(OutboxItem).where(OutboxItem.done_at.is_(None))).all() == []


def test_a_batch_signs_its_documents_by_chunks_of_bounded_size(ctx: Any, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The bytes a claimed batch holds in memory are bounded (``SIGN_CHUNK_BYTES``), whatever its row count:
    the documents are signed and stored chunk by chunk, then closed together."""
    calls = _count_signing_batches(monkeypatch)
    docs = _deposit(ctx, tmp_path, 5)
    sizes = [document(ctx, doc_id).size for doc_id in docs]
    monkeypatch.setattr(batches, "SIGN_CHUNK_BYTES", 2 * max(sizes))  # two documents per chunk
    run_jobs(ctx)
    assert calls == [2, 2, 1]
    for doc_id in docs:
        assert states(ctx, doc_id) == SERVER_OK


def test_chunks_by_size_keeps_a_large_document_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    class Doc:
        def __init__(self, size: int) -> None:
            self.size = size

    due: Any = [(index, Doc(size), 0) for index, size in enumerate([10, 10, 100, 5, 5, 5])]
    chunks = batches._chunks_by_size(due)  # budget 64 MiB: one chunk
    assert [[entry[0] for entry in chunk] for chunk in chunks] == [[0, 1, 2, 3, 4, 5]]
    monkeypatch.setattr(batches, "SIGN_CHUNK_BYTES", 20)
    chunks = batches._chunks_by_size(due)
    assert [[entry[0] for entry in chunk] for chunk in chunks] == [[0, 1], [2], [3, 4, 5]]


def test_a_document_that_fails_to_sign_holds_back_no_other(ctx: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real = signatures.server_sign_pdfs
    docs = _deposit(ctx, tmp_path, 3)
    bad = document(ctx, docs[1]).blob_sha256

    def one_fails(ctx_: Any, items: Any, **kwargs: Any) -> Any:
        out = real(ctx_, items, **kwargs)
        return [RuntimeError("illisible") if ctx_.store.read_bytes(bad) == data else signed
                for (data, _at), signed in zip(items, out, strict=True)]

    monkeypatch.setattr(signatures, "server_sign_pdfs", one_fails)
    monkeypatch.setenv("PARAFE_JOB_BACKOFF_SECONDS", "3600")  # the failed row waits: nothing retries it here
    run_jobs(ctx, until=lambda: state_of(ctx, docs[0]) == state_of(ctx, docs[2]) == State.FILED.value)
    assert state_of(ctx, docs[1]) == State.SENT_FOR_SIGN.value
    with ctx.db.read() as session:
        row = session.scalar(select(OutboxItem).where(OutboxItem.document_id == docs[1],
                                                      OutboxItem.kind == "sign.server"))
        assert row is not None
        assert row.done_at is None
        assert "illisible" in (row.last_error or "")


def test_an_error_in_the_closing_transaction_runs_the_rows_one_by_one(ctx: Any, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _deposit(ctx, tmp_path, 3)
    outbox.execute_many(ctx, outbox.claim(ctx, _pending(ctx, "workflow.start")))
    assert all(state_of(ctx, d) == State.SENT_FOR_SIGN.value for d in docs)

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("base indisponible")

    monkeypatch.setattr(batches, "finish_many", broken)
    rows = _pending(ctx, "sign.server")
    assert len(rows) == 3
    outbox.execute_many(ctx, outbox.claim(ctx, rows))
    for doc_id in docs:
        assert states(ctx, doc_id)[:3] == SERVER_OK[:3]
