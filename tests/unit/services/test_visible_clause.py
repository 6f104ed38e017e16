"""The visibility rule in SQL (rights.visible_clause / visible_within) selects exactly what rights.can_see allows.

Issue 19: the dashboard and the search each had their own copy of the clause; both now use the one in
``services/access/rights.py``. Checked on both backends, with and without the search's probe (``session``), and
for a depositor who lost their role on the circuit (only the deposits branch shows their document then).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from parafe.db.models import Circuit, CircuitRole, Document
from parafe.services.access.auth import principal_for_email
from parafe.services.access.rights import can_see, visible_clause, visible_within
from parafe.services.demo import ADMIN, AGENT, OTHER_AGENT, SIGNER, VISA
from tests.unit.services._helpers import deposit_pdf


def _check_everyone(ctx: Any) -> None:
    for email in (AGENT, VISA, SIGNER, ADMIN, OTHER_AGENT):
        principal = principal_for_email(ctx, email)
        with ctx.db.read() as session:
            documents = list(session.scalars(select(Document).where(Document.deleted_at.is_(None))))
            for account in principal.accounts:
                expected = {d.id for d in documents if can_see(session, account, d)}
                for probe in (None, session):
                    found = set(session.scalars(select(Document.id).where(
                        Document.deleted_at.is_(None), visible_clause(account, probe))))
                    assert found == expected, (email, probe is not None)
                    within = set(session.scalars(select(Document.id).where(
                        Document.deleted_at.is_(None), Document.subscriber_id == account.subscriber_id,
                        visible_within(account, probe))))
                    assert within == expected, (email, probe is not None)


def test_clause_matches_can_see(ctx: Any, tmp_path: Path) -> None:
    deposit_pdf(ctx, tmp_path)
    deposit_pdf(ctx, tmp_path)
    _check_everyone(ctx)


def test_depositor_without_role_still_sees_own_document(ctx: Any, tmp_path: Path) -> None:
    doc = deposit_pdf(ctx, tmp_path)
    agent = principal_for_email(ctx, AGENT).accounts[0]
    with ctx.db.write() as session:
        circuit_id = session.scalar(select(Document.circuit_id).where(Document.id == doc))
        assert session.get(Circuit, circuit_id) is not None
        session.execute(delete(CircuitRole).where(CircuitRole.circuit_id == circuit_id,
                                                  CircuitRole.user_id == agent.user_id))
    with ctx.db.read() as session:
        for probe in (None, session):
            assert doc in set(session.scalars(select(Document.id).where(visible_clause(agent, probe))))
    _check_everyone(ctx)
