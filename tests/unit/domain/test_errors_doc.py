"""docs/errors.md lists exactly the catalogue (regenerate with `python -m parafe.domain.errors --write`)."""

from parafe.domain.errors import markdown_table
from tests.conftest import ROOT


def test_errors_doc_in_sync() -> None:
    doc = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert doc.endswith(markdown_table()), "docs/errors.md is stale: python -m parafe.domain.errors --write"
