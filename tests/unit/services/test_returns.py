"""Returns: public ids, remaining lists and D11 (an id leaves its list once downloaded), on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import principal_for_email
from parafe.services.helios import returns
from tests.unit.services._helpers import AGENT, deposit_pdf


def test_add_return_arguments(ctx: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="an acknowledgement belongs to a document"):
        returns.add_return(ctx, kind="ack", data=b"x", name="a")  # an ack belongs to a document
    with pytest.raises(ValueError, match="siren or document_id is required"):
        returns.add_return(ctx, kind="chorus", data=b"x", name="a")
    with pytest.raises(ValueError, match="no subscriber 000000000"):
        returns.add_return(ctx, kind="chorus", data=b"x", name="a", siren="000000000")
    with pytest.raises(ValueError, match="unknown return kind"):
        returns.add_return(ctx, kind="autre", data=b"x", name="a", siren="123456789")  # type: ignore[arg-type]
    src = tmp_path / "retour.xml"
    src.write_bytes(b"<PES_Retour/>")
    first = returns.add_return(ctx, kind="pes_retour", data=src, name="retour.xml", siren="123456789")
    second = returns.add_return(ctx, kind="pes_retour", data=b"<b/>", name="b.xml", siren="123456789")
    assert second > first >= returns.RETURN_ID_START


def test_remaining_order_and_d11(ctx: Any, tmp_path: Path) -> None:
    principal = principal_for_email(ctx, AGENT)
    docs = [deposit_pdf(ctx, tmp_path) for _ in range(3)]
    for doc in reversed(docs):
        returns.add_return(ctx, kind="ack", data=f"<ack id='{doc}'/>".encode(), name="a.xml", document_id=doc)
    returns.add_return(ctx, kind="ack", data=b"<second/>", name="b.xml", document_id=docs[0])
    assert returns.remaining(ctx, principal, "123456789", "ack") == list(reversed(docs))
    got = returns.download(ctx, principal, docs[0], "ack")
    assert got.data == b"<second/>"
    assert got.public_id == docs[0]
    assert returns.remaining(ctx, principal, "123456789", "ack") == [docs[2], docs[1]]
    assert returns.latest_ack(ctx, docs[1]) == ("a.xml", f"<ack id='{docs[1]}'/>".encode())
    with pytest.raises(ParafeError) as info:
        returns.remaining(ctx, principal, "987654321", "ack")
    assert info.value.error is E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN
