"""Fixtures of the OSS API tests: one real ``parafe serve`` over TLS per test module and backend, with the demo OSS
workflow (``ensure_oss_demo``) and three more workflows for the authorization rules:

- ``oss-demo`` (subscriber 123456789): agent ``agent@demo``, admin ``admin@demo``, every mode;
- ``oss-demo-2`` (same subscriber): agent ``visa@demo`` only — its documents are invisible to ``agent@demo``;
- ``oss-serveur`` (same subscriber): agent ``agent@demo``, ``server`` mode only;
- ``oss-autre`` (subscriber 987654321): agent ``agent@autre``.

``oss.ctx`` is an application context on the same database and blob store (direct checks, purge).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.oss.helpers import Oss, oss_server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def oss(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pki_template: Path) -> Iterator[Oss]:
    with oss_server(tmp_path_factory, pki_template, str(request.param)) as server:
        yield server
