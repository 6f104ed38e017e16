"""docs/configuration.md is the one table of settings: every setting :mod:`parafe.config` reads has its line
there, and every line names a setting that exists."""

from __future__ import annotations

import re
from pathlib import Path

from parafe.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _documented() -> set[str]:
    table = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(PARAFE_[A-Z0-9_]+)` \|", table, flags=re.MULTILINE))


def _read_by_config() -> set[str]:
    source = (ROOT / "parafe" / "config.py").read_text(encoding="utf-8")
    read_each_call = set(re.findall(r'_(?:int|float|str|bool)\("(PARAFE_[A-Z0-9_]+)"', source))
    read_once = {f"PARAFE_{name.upper()}" for name in Settings.model_fields}
    return read_each_call | read_once


def test_every_setting_has_its_line() -> None:
    documented, read = _documented(), _read_by_config()
    assert read - documented == set(), "settings missing from docs/configuration.md"
    assert documented - read == set(), "lines of docs/configuration.md naming no setting"
