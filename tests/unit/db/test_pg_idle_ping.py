"""PostgreSQL connections idle for a while are pinged before use: one dropped by the server is replaced
instead of failing the request (parafe.db.session.IDLE_PING_SECONDS)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from parafe.db import session as db_session
from parafe.db.session import make_engine
from tests.conftest import _require_postgres


def _terminate(admin_url: str, application: str) -> int:
    admin = make_engine(admin_url)
    try:
        with admin.connect() as conn:
            killed = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :a"),
                {"a": application}).scalar_one()
            conn.commit()
        return int(killed)
    finally:
        admin.dispose()


@pytest.mark.parametrize("idle_ping", [True, False])
def test_a_dropped_idle_connection(idle_ping: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _require_postgres()
    application = f"parafe-ping-{uuid.uuid4().hex[:8]}"
    engine = make_engine(url, connect_args={"application_name": application}, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        assert _terminate(url, application) == 1  # the pooled connection is gone server-side
        monkeypatch.setattr(db_session, "IDLE_PING_SECONDS", 0.0 if idle_ping else 3600.0)
        if idle_ping:
            with engine.connect() as conn:  # pinged, found dead, replaced: the query succeeds
                assert conn.execute(text("SELECT 2")).scalar_one() == 2
        else:
            with pytest.raises(OperationalError), engine.connect() as conn:  # what the ping prevents
                conn.execute(text("SELECT 2"))
            with engine.connect() as conn:  # and the pool recovers on its own afterwards
                assert conn.execute(text("SELECT 3")).scalar_one() == 3
    finally:
        engine.dispose()
