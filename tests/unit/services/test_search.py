"""Search criteria reading (REST JSON / query, SOAP map) and the search service, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from parafe.db.models import Document
from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import principal_for_email
from parafe.services.documents.search import SearchCriteria, search, search_details
from tests.unit.services._helpers import AGENT, deposit_pdf


def test_from_wire_names_numbers_and_meta() -> None:
    c = SearchCriteria.from_wire({"siren": 123456789, "circuitId": "bureautique", "STATE": "signed",
                                  "validateBeforex": "31/12/2022", "inconnu": "x",
                                  "meta": {"parameters": {"entry": [{"key": "Meta 1", "value": "777"},
                                                                    {"key": "Meta 2", "value": 666}]}}})
    assert (c.siren, c.circuit, c.state, c.validate_before) == ("123456789", "bureautique", "signed", "31/12/2022")
    assert c.meta == {"Meta 1": "777", "Meta 2": "666"}
    assert SearchCriteria.from_wire({"siren": "1", "meta": {"montant": 451200}}).meta == {"montant": "451200"}


@pytest.mark.parametrize("values", [
    {}, {"siren": ""}, {"siren": "1", "label": "x" * 256}, {"siren": "1", "label": ["a"]},
    {"siren": "1", "meta": [1]}, {"siren": "1", "meta": "a"}, {"siren": "1", "label": "a\x00"},
    {"siren": True},
])
def test_from_wire_refusals(values: dict[str, Any]) -> None:
    with pytest.raises(ParafeError) as info:
        SearchCriteria.from_wire(values)
    assert info.value.error is E.BAD_REQUEST


def test_search_paris_days_and_details(ctx: Any, tmp_path: Path) -> None:
    doc = deposit_pdf(ctx, tmp_path, label="Lot")
    with ctx.db.write() as s:  # deposited on 31/12/2025 at 23:30 UTC, i.e. 01/01/2026 in Paris
        row = s.get(Document, doc)
        assert row is not None
        row.created_at = datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
    principal = principal_for_email(ctx, AGENT)

    def ids(**kw: Any) -> list[int]:
        return search(ctx, principal, SearchCriteria(siren="123456789", label="Lot", **kw))

    assert ids(upload_after="01/01/2026", upload_before="01/01/2026") == [doc]
    assert ids(upload_before="31/12/2025") == []
    assert ids(upload_after="02/01/2026") == []
    with pytest.raises(ParafeError) as info:
        ids(upload_after="31/02/2026")
    assert info.value.error is E.BAD_REQUEST
    hits = search_details(ctx, principal, SearchCriteria(siren="123456789", label="Lot"))
    assert [(h.doc_id, h.doc_label, h.subscriber_name) for h in hits] == [(doc, "Lot", "Commune de Démo")]
