"""Processes starting together on a new PostgreSQL queue (the chaos run's first finding): PostgresHuey creates its
tables when it is built, and two builders racing on ``CREATE TABLE IF NOT EXISTS`` made one of them fail with a
unique violation in ``pg_type`` — a ``parafe worker`` that died at start. Every builder must now get its queue."""

from __future__ import annotations

import subprocess
import sys

import pytest

from parafe.config import Settings
from parafe.context import AppContext
from tests.conftest import create_postgres_database, drop_postgres_database

BUILD = """
import os, sys, time
from parafe.config import Settings
from parafe.jobs.queue import build_huey
from parafe.context import AppContext
ctx = AppContext.from_settings(Settings(home=sys.argv[1], database_url=sys.argv[2]))
start = float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))  # every process builds at the same instant
huey = build_huey(ctx)
huey.enqueue  # noqa: B018
print("ok", flush=True)
"""


@pytest.mark.parametrize("attempt", range(3))
def test_builders_racing_on_a_new_database_all_get_the_queue(tmp_path: object, attempt: int) -> None:
    import time
    from pathlib import Path

    url, name = create_postgres_database("parafe_q")
    try:
        home = Path(str(tmp_path)) / "home"
        home.mkdir()
        env = {"PARAFE_QUEUE": "postgres", "PATH": "/usr/bin:/bin"}
        start = f"{time.time() + 3.0:.3f}"
        procs = [subprocess.Popen([sys.executable, "-c", BUILD, str(home), url, start], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
        outcomes = [p.communicate(timeout=120) for p in procs]
        failed = [err[-600:] for (out, err), p in zip(outcomes, procs, strict=True) if p.returncode != 0]
        assert failed == [], failed
        ctx = AppContext.from_settings(Settings(home=home, database_url=url))
        ctx.close()
    finally:
        drop_postgres_database(name)
