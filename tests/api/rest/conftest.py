"""Fixtures of the REST API tests: one real ``parafe serve`` over TLS per test module and backend.

Starting a server per test would cost seconds each; the module-scoped ``rest`` fixture starts one on a fresh
home (SQLite, then PostgreSQL) and every test uses its own file names, so tests stay independent. ``rest.ctx``
is an application context on the same database and blob store, used to create the states the workflow would
create (a refusal, an acknowledgement…) directly, as the brief asks, without mocking our code. The server runs
without its in-process workflow worker (``PARAFE_WORKER_IN_PROCESS=false``) so that a document stays in the
state a test puts it in; the workflow has its own tests.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from parafe.config import Settings
from parafe.context import AppContext
from tests.conftest import (
    Home,
    ServedHome,
    create_postgres_database,
    drop_postgres_database,
    init_home,
    start_server,
    stop_server,
)


class Rest(ServedHome):
    """The REST suite's module-scoped server."""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rest(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         pki_template: Path) -> Iterator[Rest]:
    backend = str(request.param)
    path = tmp_path_factory.mktemp(f"rest-{backend}") / "home"
    shutil.copytree(pki_template, path)
    dbname = None
    if backend == "sqlite":
        url = f"sqlite:///{path / 'parafe.db'}"
    else:
        url, dbname = create_postgres_database()
    try:
        init_home(path, url)
        home = Home(path=path, backend=backend, database_url=url)
        server = start_server(home, {"PARAFE_WORKER_IN_PROCESS": "false"})
        ctx = AppContext.from_settings(Settings(home=path, database_url=url))
        try:
            yield Rest(server=server, ctx=ctx)
        finally:
            ctx.close()
            stop_server(server)
    finally:
        if dbname:
            drop_postgres_database(dbname)
