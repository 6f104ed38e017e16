"""The error catalogue and the state table are copied from the spec files: a retyped accent must fail here."""

from __future__ import annotations

import re

import pytest

from parafe.domain import errors, states
from parafe.domain.errors import E
from tests.conftest import SPEC

REF = (SPEC / "API-REFERENCE.md").read_text(encoding="utf-8")
ORIGINAL = (SPEC / "FAST-Parapheur-interfacage-v3.4.txt").read_text(encoding="utf-8")
DECISIONS = (SPEC / "DECISIONS.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = REF.index(title)
    nxt = REF.find("\n### ", start + len(title))
    return REF[start: nxt if nxt != -1 else None]


def _soap_rows() -> dict[str, str]:
    rows = {}
    for line in _section("### 3.2 SOAP error-message catalogue").splitlines():
        m = re.match(r"\| (S\d\d) \| (.*?) \|", line)
        if m:
            cell = m.group(2)
            code = re.search(r"`([^`]*)`", cell)
            rows[m.group(1)] = code.group(1) if code else cell
    return rows


SOAP_ROWS = _soap_rows()


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_every_soap_message_has_an_entry() -> None:
    assert len(SOAP_ROWS) == 31
    ids = {e.soap_id for e in errors.catalogue().values() if e.soap_id}
    assert ids == set(SOAP_ROWS)


@pytest.mark.parametrize("entry", [e for e in errors.catalogue().values() if e.soap_id], ids=lambda e: e.key)
def test_soap_messages_verbatim(entry: errors.ErrorDef) -> None:
    expected = SOAP_ROWS[entry.soap_id or ""]
    message = entry.message.replace("{name}", "Nom_de_la_métadonnée")
    if entry.soap_id == "S28":
        # G-10: unbalanced guillemets in the source; DECISIONS D20 fixes the wire string.
        assert f"« {message} »" in DECISIONS
        assert "rejeté ou « refusé »" in ORIGINAL
        return
    assert message == expected
    # And the original document has it too (its lines may be wrapped).
    assert _flat(message.rstrip(".")) in _flat(ORIGINAL) or entry.soap_id in ("S24",)


def test_rest_codes_verbatim() -> None:
    table = _section("### 4.4 Error shape and codes")
    rows = {}
    for line in table.splitlines():
        m = re.match(r"\| (\d{3}) \| ([^|]+) \| `([^`]*)` \|", line)
        if m:
            rows[int(m.group(1))] = (m.group(2).strip(), m.group(3))
    assert set(rows) == {100, 102, 111, 117, 118, 119, 120, 121, 122}
    for code, (developer, meaning) in rows.items():
        entry = errors.by_code(code)
        assert entry.developer == developer
        if code == 117:
            # The wire example of §4.4 gives the userFriendlyMessage of 117 verbatim.
            assert f'"userFriendlyMessage": "{entry.message}"' in table
        else:
            assert entry.message == meaning


def test_webdav_cases_verbatim() -> None:
    section = _section("### 9.5 Error cases")
    cases = {int(m.group(1)): m.group(2) for m in re.finditer(r"^(\d+)\. `([^`]*)`", section, re.M)}
    assert cases == errors.WEBDAV_CASES
    for key, case in errors.WEBDAV_CASE_OF.items():
        assert key in errors.catalogue()
        assert case in cases


def test_codes_are_unique_and_in_range() -> None:
    codes = [e.code for e in errors.catalogue().values()]
    assert len(codes) == len(set(codes))
    for code in codes:
        assert code in (100, 102, 111, 117, 118, 119, 120, 121, 122) or 130 <= code <= 299


def test_placeholder_formatting() -> None:
    err = errors.ParafeError(E.METADATA_UNKNOWN, name="NUM001")
    assert err.message == "La métadonnée NUM001 n'est pas définie pour cette cinématique"


def _history_rows() -> dict[str, str]:
    rows = {}
    for line in _section("### 2.1 History state labels").splitlines():
        m = re.match(r"\| (H\d+) \| `([^`]*)` \|", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_v34_history_labels_verbatim() -> None:
    rows = _history_rows()
    assert len(rows) == 22
    v34 = set(states.LABELS_V34.values())
    for label in rows.values():
        assert label in v34, label
    # The state named by S21 is the only extra label of the v3.4 set, besides Parafe's own states (issue 18).
    own = {states.LABELS_V34[s] for s in states.PARAFE_OWN}
    assert v34 - set(rows.values()) - own == {"Prêt à définir les métadonnées"}
    assert "'Prêt à définir les métadonnées'" in SOAP_ROWS["S21"]
    for label in v34 - own:
        assert label in ORIGINAL


def test_client_labels_come_from_decisions() -> None:
    assert states.LABELS_CLIENTS[states.State.APPROVED] == "Visa approuvé"
    for label in ("Visa approuvé", "Visa désapprouvé", "OTP signé"):
        assert f"`{label}`" in DECISIONS
    assert set(states.LABEL_SETS) == {"clients", "v3.4"}
    assert set(states.LABELS_CLIENTS) == set(states.LABELS_V34) == set(states.State)


def test_search_codes_verbatim() -> None:
    section = _section("### 2.2 Search state codes")
    codes = re.findall(r"^\| `(\w+)` \|", section, re.M)
    assert len(codes) == 12
    assert list(states.SEARCH_CODES) == codes
    assert states.states_for_search_code("signed") == states.SEARCH_CODES["Signed"]
    assert states.states_for_search_code("SENDFORVISA") == states.SEARCH_CODES["SendForVisa"]
    assert states.states_for_search_code("nope") is None
