"""Fixtures of the SOAP interop tests: one server per test module (SQLite, workflow worker off)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.soap.soaputil import module_server
from tests.conftest import LiveServer


@pytest.fixture(scope="module")
def soap_server(tmp_path_factory: pytest.TempPathFactory, pki_template: Path) -> Iterator[LiveServer]:
    yield from module_server(tmp_path_factory, pki_template)
