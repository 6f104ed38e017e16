"""Fixtures of the WebDAV API tests: one real server per test module and backend (see ``davutil``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.webdav.davutil import Dav, dav_server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def dav(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pki_template: Path) -> Iterator[Dav]:
    with dav_server(tmp_path_factory, pki_template, str(request.param)) as server:
        yield server
