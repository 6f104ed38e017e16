"""Migration 0017: delegation bounds stored on SQLite as Paris wall-clock midnights become UTC instants; bounds
already stored as instants (and every PostgreSQL row) are left as they are."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from parafe.db.migrate import upgrade


def test_paris_wall_clock_bounds_become_utc_instants(tmp_path: Path) -> None:
    path = tmp_path / "parafe.db"
    url = f"sqlite:///{path}"
    upgrade(url, "0016_delegation")
    rows = [  # id, starts_at, ends_at as the code before 2026-12-08 (1, 2) and after (3) stored them
        (1, "2026-12-08 00:00:00.000000", "2026-12-10 00:00:00.000000"),  # winter: UTC+1
        (2, "2026-07-01 00:00:00.000000", "2026-07-02 00:00:00.000000"),  # summer: UTC+2
        (3, "2026-12-07 23:00:00.000000", "2026-12-08 23:00:00.000000"),  # already instants
    ]
    with sqlite3.connect(path) as conn:  # foreign keys off: no users needed
        conn.executemany("INSERT INTO delegations (id, delegator_id, delegate_id, starts_at, ends_at, created_by, "
                         "created_at) VALUES (?, 1, 2, ?, ?, 'admin', '2026-12-01 10:00:00.000000')", rows)
    upgrade(url)
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT id, starts_at, ends_at FROM delegations ORDER BY id").fetchall()
    assert found == [
        (1, "2026-12-07 23:00:00.000000", "2026-12-09 23:00:00.000000"),
        (2, "2026-06-30 22:00:00.000000", "2026-07-01 22:00:00.000000"),
        (3, "2026-12-07 23:00:00.000000", "2026-12-08 23:00:00.000000"),
    ]
