"""Fixtures of the WebDAV interop tests: real clients (curl, cadaver, rclone, litmus) as subprocesses against one
real server per module (SQLite; the backend is covered by ``tests/api/webdav``). A missing tool skips locally
and fails in CI (``CI=true``): see ``davutil.require_tool``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.webdav.davutil import Dav, dav_server


@pytest.fixture(scope="module")
def dav(tmp_path_factory: pytest.TempPathFactory, pki_template: Path) -> Iterator[Dav]:
    with dav_server(tmp_path_factory, pki_template, "sqlite") as server:
        yield server
