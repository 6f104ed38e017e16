"""getSMSHistory (spec §2.5.20): month ``yyyy-MM`` (``00`` = whole year), status filters, ``limit`` 0 = all,
rights (admins: whole subscriber; others: their circuits), through the service and the SOAP operation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import Circuit, OtpChallenge, Subscriber
from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import principal_for_email
from parafe.services.circuits import sms_history
from parafe.services.demo import ADMIN, AGENT, OTHER_AGENT, VISA

ROWS = [  # (created, status, channel, circuit)
    (datetime(2024, 3, 5, 10, tzinfo=UTC), "done", "sms", "otp"),
    (datetime(2024, 3, 20, 10, tzinfo=UTC), "pending", "sms", "otp"),
    (datetime(2024, 7, 1, 10, tzinfo=UTC), "expired", "sms", "otp"),
    (datetime(2024, 7, 2, 10, tzinfo=UTC), "locked", "sms", "bureautique"),
    (datetime(2025, 1, 1, 10, tzinfo=UTC), "replaced", "sms", "otp"),
    (datetime(2024, 3, 6, 10, tzinfo=UTC), "done", "email", "otp"),  # e-mail codes are not SMS
]


@pytest.fixture
def sms(ctx: Any) -> Any:
    with ctx.db.write() as s:
        sub = s.scalar(select(Subscriber).where(Subscriber.siren == "123456789"))
        circuits = {c.key: c.id for c in s.scalars(select(Circuit).where(Circuit.subscriber_id == sub.id))}
        for created, status, channel, key in ROWS:
            s.add(OtpChallenge(subscriber_id=sub.id, circuit_id=circuits[key], channel=channel,
                               destination="+33600000000", code_hash="x", status=status, created_at=created,
                               expires_at=created))
    return ctx


def _statuses(ctx: Any, user: str = ADMIN, circuit: str | None = None, month: str | None = None,
              **kw: Any) -> list[str]:
    return [e.status for e in sms_history(ctx, principal_for_email(ctx, user), "123456789", circuit, month, **kw)]


def test_months_and_whole_year(sms: Any) -> None:
    assert _statuses(sms, month="2024-03") == ["done", "pending"]
    assert _statuses(sms, month="2024-00") == ["done", "pending", "expired", "locked"]
    assert _statuses(sms) == ["done", "pending", "expired", "locked", "replaced"]
    assert _statuses(sms, month="2024-07", circuit="otp") == ["expired"]
    for bad in ("2014-05", "2024-13", "24-01", "2024-1"):
        with pytest.raises(ParafeError) as info:
            _statuses(sms, month=bad)
        assert info.value.error is E.BAD_REQUEST


@pytest.mark.parametrize(("status", "expected"), [
    ("pending", ["pending"]), ("done", ["done"]), ("waiting", ["expired", "locked", "replaced"]),
    ("not_pending", ["done", "expired", "locked", "replaced"]), ("not_done", ["pending", "expired", "locked",
                                                                            "replaced"]),
    ("not_waiting", ["done", "pending"]), ("", ["done", "pending", "expired", "locked", "replaced"]),
    ("n'importe quoi", ["done", "pending", "expired", "locked", "replaced"]),
])
def test_status_filters(sms: Any, status: str, expected: list[str]) -> None:
    assert _statuses(sms, status=status) == expected


def test_limit(sms: Any) -> None:
    assert _statuses(sms, limit=2) == ["done", "pending"]
    assert _statuses(sms, limit="0") == ["done", "pending", "expired", "locked", "replaced"]
    with pytest.raises(ParafeError):
        _statuses(sms, limit="-1")


def test_rights(sms: Any) -> None:
    # the agent has a role on every demo circuit; the valideur only on bureautique
    assert _statuses(sms, user=AGENT) == ["done", "pending", "expired", "locked", "replaced"]
    assert _statuses(sms, user=VISA) == ["locked"]
    with pytest.raises(ParafeError) as info:
        _statuses(sms, user=OTHER_AGENT)
    assert info.value.error is E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN
    with pytest.raises(ParafeError) as info:
        _statuses(sms, circuit="inconnu")
    assert info.value.error is E.CIRCUIT_NOT_FOUND
