"""The import contracts of pyproject.toml ([tool.importlinter], issue 19) hold on the tree, and a wrong import
breaks them: ``lint-imports`` run on the real package, then on a copy with one deliberate layer violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (dev extra)")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the contracts of ``cwd/pyproject.toml``, importing ``parafe`` from ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", str(cwd / "pyproject.toml")], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_tree_keeps_its_contracts() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_wrong_import_breaks_the_layers(tmp_path: Path) -> None:
    # a copy of the package's Python files (the rest is not needed to build the import graph)
    shutil.copytree(ROOT / "parafe", tmp_path / "parafe",
                    ignore=lambda folder, names: [n for n in names
                                                  if not n.endswith(".py") and not (Path(folder) / n).is_dir()
                                                  or n == "__pycache__"])
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    states = tmp_path / "parafe" / "domain" / "states.py"
    states.write_text(states.read_text(encoding="utf-8") + "\nimport parafe.connectors.rest  # deliberately wrong\n",
                      encoding="utf-8")

    result = _lint(tmp_path)

    assert result.returncode != 0, result.stdout
    assert "Layers: a package imports only from the layers below it BROKEN" in " ".join(result.stdout.split())
    assert "parafe.domain.states -> parafe.connectors.rest" in result.stdout
