"""Fixtures of the PKI and certificate-verification tests: one dev PKI per test session (RSA keys are slow)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from parafe.security import pki_dev

DEMO = [("agent@demo.parafe.test", "Agent Démo"), ("marie.curie@demo.parafe.test", "Marie Curie")]


@pytest.fixture(scope="session")
def dev_pki_template(tmp_path_factory: pytest.TempPathFactory) -> pki_dev.DevPki:
    return pki_dev.init_dev_pki(tmp_path_factory.mktemp("devpki"), DEMO)


@pytest.fixture
def dev_pki(dev_pki_template: pki_dev.DevPki, tmp_path: Path) -> pki_dev.DevPki:
    """A private copy of the session's dev PKI (tests may modify it)."""
    home = tmp_path / "home"
    shutil.copytree(dev_pki_template.home, home)
    return pki_dev.init_dev_pki(home, DEMO)
