"""The portal's services on SQLite and PostgreSQL: dashboard lists (one query each, whatever the number of
documents), visibility, the document page, remote signing with the signer's own key (prepare / finish), and
the OTP page's link resolution."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from parafe.domain.errors import E, ParafeError
from parafe.services import steps as workflow
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import AGENT, OTHER_AGENT, SIGNER, VISA
from parafe.services.portal import document_page, lists
from parafe.services.signers import remote_signing
from parafe.signing.keys import load_signer
from tests.fixtures.files import pdf_bytes
from tests.workflow.conftest import deposit_file, run_jobs


@pytest.fixture(autouse=True)
def memory_queue(home: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARAFE_QUEUE", "memory")


@contextmanager
def counted(ctx: Any) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append(statement)

    event.listen(ctx.db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", record)


def at_visa(ctx: Any, tmp_path: Path, count: int, prefix: str = "doc") -> list[int]:
    ids = [deposit_file(ctx, tmp_path, f"{prefix}-{i}.pdf", pdf_bytes(1, f"{prefix} {i}"), circuit="bureautique",
                        label="Lot") for i in range(count)]
    run_jobs(ctx)
    return ids


def test_lists_are_one_query_each_whatever_the_number_of_documents(ctx: Any, tmp_path: Path) -> None:
    visa = principal_for_email(ctx, VISA)
    at_visa(ctx, tmp_path, 2, "a")
    sizes = []
    for _round in range(2):
        with counted(ctx) as statements:
            pending = lists.pending(ctx, visa)
            page = lists.documents(ctx, visa, lists.Filters(view="en-cours"))
            cats = lists.categories(ctx, visa)
            counts = lists.counts(ctx, visa)
        sizes.append((len(pending), page.total, len(statements)))
        at_visa(ctx, tmp_path, 5, f"b{_round}")
    assert sizes[0][0] == 2
    assert sizes[1][0] == 7
    assert sizes[0][2] == sizes[1][2] == 5  # pending 1, documents 1 + count 1, categories 1, counts 1
    assert counts.to_visa == 7
    assert counts.to_sign == 0
    assert any(c.key == "bureautique" and c.count == 7 and c.labels[0].name == "Lot" for c in cats)


def test_pending_follows_the_step_members_and_visibility(ctx: Any, tmp_path: Path) -> None:
    ids = at_visa(ctx, tmp_path, 2)
    visa, signer, agent, other = (principal_for_email(ctx, e) for e in (VISA, SIGNER, AGENT, OTHER_AGENT))
    assert [r.id for r in lists.pending(ctx, visa)] == ids
    assert all(r.action == "visa" for r in lists.pending(ctx, visa))
    assert lists.pending(ctx, signer) == []
    assert lists.pending(ctx, agent) == []
    assert lists.documents(ctx, other, lists.Filters(view="tous")).total == 0
    assert lists.counts(ctx, other).in_progress == 0
    workflow.approve_visa(ctx, visa, ids[0])
    run_jobs(ctx)
    assert [(r.id, r.action) for r in lists.pending(ctx, signer)] == [(ids[0], "signature")]
    assert [r.id for r in lists.pending(ctx, visa)] == [ids[1]]
    mine = lists.documents(ctx, agent, lists.Filters(view="deposes"))
    assert {r.id for r in mine.rows} == set(ids)
    assert all(r.action is None for r in mine.rows)  # the depositor cannot act on them
    listed = {r.id: r.action for r in lists.documents(ctx, visa, lists.Filters(view="tous")).rows}
    assert listed == {ids[0]: None, ids[1]: "visa"}
    found = lists.documents(ctx, agent, lists.Filters(view="tous", text="DOC-1"))
    assert [r.id for r in found.rows] == [ids[1]]
    by_state = lists.documents(ctx, agent, lists.Filters(view="tous", state="SentForSign"))
    assert [r.id for r in by_state.rows] == [ids[0]]
    with pytest.raises(ParafeError) as err:
        document_page.document_view(ctx, other, ids[0])
    assert err.value.error is E.DOCUMENT_NOT_FOUND
    view = document_page.document_view(ctx, signer, ids[0])
    assert view.actions == frozenset({"signature"})
    assert [s.status for s in view.steps] == ["done", "current", "todo"]
    assert "Victor Valideur" in view.steps[0].members[0]
    assert document_page.document_view(ctx, agent, ids[1]).actions == frozenset()


def _demo_signer(home: Any, email: str) -> Any:
    return load_signer(home.path / "demo" / f"{email}.p12", "demo")


def test_remote_signing_prepare_and_finish(ctx: Any, home: Any, tmp_path: Path) -> None:
    ids = at_visa(ctx, tmp_path, 2)
    visa, signer_principal = principal_for_email(ctx, VISA), principal_for_email(ctx, SIGNER)
    for doc_id in ids:
        workflow.approve_visa(ctx, visa, doc_id)
    run_jobs(ctx)
    key = _demo_signer(home, SIGNER)
    pem = [key.certificate.public_bytes(__import__("cryptography.hazmat.primitives.serialization",
                                                   fromlist=["Encoding"]).Encoding.PEM)]
    # someone else's certificate is refused
    with pytest.raises(ParafeError) as err:
        remote_signing.prepare(ctx, signer_principal, ids, [_demo_signer(home, AGENT).cert_der])
    assert err.value.error is E.SIGNER_CERTIFICATE_NOT_OWNED
    # the validator cannot prepare a signature
    with pytest.raises(ParafeError) as err:
        remote_signing.prepare(ctx, visa, ids, pem)
    assert err.value.error is E.STEP_NOT_ACTIONABLE
    prepared = remote_signing.prepare(ctx, signer_principal, ids, pem)
    assert [d.id for d in prepared.documents] == ids
    assert all(d.prepared for d in prepared.documents)
    values = {d.id: [base64.b64encode(key.sign_raw(r.data_to_sign)).decode() for r in d.requests]
              for d in prepared.documents}
    # another user cannot use the session; a wrong value is refused for that document only
    with pytest.raises(ParafeError) as err:
        remote_signing.finish(ctx, visa, prepared.session_id, values)
    assert err.value.error is E.SIGNING_SESSION_INVALID
    tampered = dict(values)
    tampered[ids[1]] = [base64.b64encode(key.sign_raw(b"something else")).decode()]
    outcomes = remote_signing.finish(ctx, signer_principal, prepared.session_id, tampered)
    assert [(o.id, o.ok) for o in outcomes] == [(ids[0], True), (ids[1], False)]
    assert "ne correspond pas" in (outcomes[1].message or "")
    run_jobs(ctx)
    assert document_page.document_view(ctx, signer_principal, ids[0]).state_label == "Classé"
    assert document_page.document_view(ctx, signer_principal, ids[1]).state_label == "Envoyé pour signature"
    report = document_page.verification(ctx, signer_principal, ids[0])
    assert report is not None
    assert report.valid
    with pytest.raises(ParafeError) as err:
        remote_signing.finish(ctx, signer_principal, "0" * 64, values)
    assert err.value.error is E.SIGNING_SESSION_INVALID
