"""Each rule of issue 19 point 3 has one home in ``parafe/``: this scan fails when a second copy comes back.

E-mail check: ``domain/emails.py``; Europe/Paris time: ``domain/paris_time.py``; document ids and ``MAX_IDS``:
``domain/ids.py``; finished states: ``domain/states.py``; the visibility clause: ``services/access/rights.py``;
ASGI/WSGI type aliases: ``security/asgi_types.py``. The behaviour of each is tested next to it
(tests/unit/domain/test_single_home_rules.py, tests/unit/services/test_visible_clause.py,
tests/unit/services/test_finished_states.py).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "parafe"
EMAILS = "domain/emails.py"
PARIS_TIME = "domain/paris_time.py"
IDS = "domain/ids.py"
STATES = "domain/states.py"
RIGHTS = "services/access/rights.py"
ASGI_TYPES = "security/asgi_types.py"


def _modules() -> Iterator[tuple[str, str, ast.Module]]:
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("db/migrations/"):
            continue
        text = path.read_text(encoding="utf-8")
        yield rel, text, ast.parse(text, filename=rel)


MODULES = list(_modules())


def _where(pattern: str) -> set[str]:
    regex = re.compile(pattern, re.MULTILINE)
    return {rel for rel, text, _ in MODULES if regex.search(text)}


def test_the_scan_sees_the_tree() -> None:
    names = {rel for rel, _, _ in MODULES}
    assert {EMAILS, PARIS_TIME, IDS, STATES, RIGHTS, ASGI_TYPES} <= names
    assert len(names) > 100


def test_one_email_pattern() -> None:
    # a character class refusing "@" is how every former copy wrote the address check
    assert _where(r"\[\^@") == {EMAILS}
    assert _where(r"^_?EMAIL(_RE)?\s*=\s*re\.compile") <= {EMAILS}


def test_one_paris_time_zone() -> None:
    assert _where(r"ZoneInfo\(") == {PARIS_TIME}
    assert _where(r"[\"']Europe/Paris[\"']") == {PARIS_TIME}


def test_one_id_parser_and_limit() -> None:
    assert _where(r"^MAX_IDS\s*=") == {IDS}
    assert _where(r"int\(str\(\w*id\)\.strip\(\)\)") <= {IDS}  # document_id, public_id, …
    assert _where(r"2\s*\*\*\s*62") == {IDS}


def _state_names(node: ast.expr) -> set[str]:
    """``State.X``, ``State.X.value`` or the stored value ``"x"`` of one element of a display."""
    if isinstance(node, ast.Attribute) and node.attr == "value":
        node = node.value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "State":
        return {node.attr.lower()}
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    return set()


def test_one_finished_states_set() -> None:
    """No set, list or tuple outside the state table names both « Classé » and « Archivé » (the core of every
    former copy of the finished states)."""
    found = set()
    for rel, _, tree in MODULES:
        for node in ast.walk(tree):
            if isinstance(node, ast.Set | ast.List | ast.Tuple):
                names = set().union(*(_state_names(e) for e in node.elts)) if node.elts else set()
                if {"filed", "archived"} <= names:
                    found.add(rel)
    assert found == {STATES}


def test_one_visibility_clause() -> None:
    defined = {rel for rel, _, tree in MODULES for node in ast.walk(tree)
               if isinstance(node, ast.FunctionDef) and node.name in ("_visible", "visible_within", "visible_clause")}
    assert defined == {RIGHTS}


ALIASES = {"Scope", "Message", "Receive", "Send", "ASGIApp", "Environ", "StartResponse"}


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_one_asgi_wsgi_alias(alias: str) -> None:
    defined = set()
    for rel, _, tree in MODULES:
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == alias for t in targets):
                defined.add(rel)
    assert defined == {ASGI_TYPES}
