"""Pure deposit rules: annex extensions (§1.8, verbatim), file names (D3), labels (D5)."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone

import pytest

from parafe.domain.deposit import (
    ANNEX_EXTENSIONS,
    NAME_LIMIT_WEBDAV,
    NAME_LIMIT_WS,
    check_annex_name,
    check_label,
    default_label,
    extension_of,
    is_annex_extension_allowed,
    normalise_name,
)
from parafe.domain.errors import E, ParafeError
from tests.conftest import SPEC


def _spec_extensions() -> list[str]:
    ref = (SPEC / "API-REFERENCE.md").read_text(encoding="utf-8")
    section = ref[ref.index("### 1.8 Allowed annex extensions"):]
    match = re.search(r"```\n(.*?)\n```", section, re.S)
    assert match
    return match.group(1).strip().split(",")


def test_annex_extensions_are_the_spec_list_verbatim() -> None:
    spec = _spec_extensions()
    assert len(spec) == 62
    assert list(ANNEX_EXTENSIONS) == spec


def test_annex_extension_check_is_case_insensitive() -> None:
    assert is_annex_extension_allowed("Rapport.PDF")
    assert is_annex_extension_allowed("a.p7s")
    assert not is_annex_extension_allowed("a.py")
    assert not is_annex_extension_allowed("noextension")
    check_annex_name("photo.JPEG")
    with pytest.raises(ParafeError) as err:
        check_annex_name("virus.scr")
    assert err.value.error is E.EXTENSION_NOT_ALLOWED
    assert err.value.message == "Extension du fichier non autorisée."


@pytest.mark.parametrize(("name", "ext"), [
    ("bonjour.pdf", "pdf"), ("BONJOUR.PDF", "pdf"), ("a.tar.gz", "gz"), ("bonjour.pdf.zip", "zip"),
    ("noext", ""), (".bashrc", ""), ("trailing.", ""), ("a.b.", ""),
])
def test_extension_of(name: str, ext: str) -> None:
    assert extension_of(name) == ext


def test_limits_of_d3() -> None:
    assert (NAME_LIMIT_WS, NAME_LIMIT_WEBDAV) == (150, 200)


def test_nfd_input_is_normalised_to_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "Délibération n°12 – été.pdf")
    assert nfd != unicodedata.normalize("NFC", nfd)
    name = normalise_name(nfd, 150)
    assert name == "Délibération n°12 – été.pdf"
    assert unicodedata.is_normalized("NFC", name)
    assert normalise_name(nfd.encode("utf-8"), 150) == name


def test_length_counts_characters_after_nfc() -> None:
    # 150 NFC characters, 300 code points in NFD: accepted
    name = "é" * 146 + ".pdf"
    assert normalise_name(unicodedata.normalize("NFD", name), 150) == name


def test_150_characters_ok_151_too_long() -> None:
    assert normalise_name("a" * 146 + ".pdf", NAME_LIMIT_WS)
    with pytest.raises(ParafeError) as err:
        normalise_name("a" * 147 + ".pdf", NAME_LIMIT_WS)
    assert err.value.error is E.NAME_TOO_LONG
    assert err.value.message == "Le nom du fichier ne doit pas excéder 150 caractères."
    assert normalise_name("a" * 147 + ".pdf", NAME_LIMIT_WEBDAV)  # WebDAV allows 200
    with pytest.raises(ParafeError) as err:
        normalise_name("a" * 197 + ".pdf", NAME_LIMIT_WEBDAV)
    assert err.value.message == "Le nom du fichier ne doit pas excéder 200 caractères."


@pytest.mark.parametrize("raw", [
    "dir/name.pdf", "dir\\name.pdf", "nul\x00.pdf", "tab\t.pdf", "new\nline.pdf", "cr\r.pdf", "esc\x1b.pdf",
    "del\x7f.pdf", "c1\x85.pdf", "bidi\u202efdp.exe", "lone\udce9.pdf", ".", "..",
])
def test_bad_characters(raw: str) -> None:
    with pytest.raises(ParafeError) as err:
        normalise_name(raw, 150)
    assert err.value.error is E.BAD_CHARACTERS
    assert err.value.message == "Fichier contenant une mauvaise séquence de caractères."


@pytest.mark.parametrize("raw", [b"caf\xe9.pdf", b"\xff\xfe.pdf", b"ok\xc3.pdf"])
def test_bytes_that_are_not_utf8(raw: bytes) -> None:
    with pytest.raises(ParafeError) as err:
        normalise_name(raw, 150)
    assert err.value.error is E.BAD_CHARACTERS


@pytest.mark.parametrize("raw", ["", "   ", b""])
def test_missing_name(raw: str | bytes) -> None:
    with pytest.raises(ParafeError) as err:
        normalise_name(raw, 150)
    assert err.value.error is E.NAME_MISSING


@pytest.mark.parametrize("raw", ["bonjour.pdf", "METAS_bonjour.pdf.xml", "Facture (copie) 2024 #3 é€😀.pdf",
                                 " leading space.pdf"])
def test_good_names_are_kept(raw: str) -> None:
    assert normalise_name(raw, 150) == raw


def test_labels() -> None:
    assert check_label(None) is None
    assert check_label("   ") is None
    assert check_label("  Conseil municipal  ") == "Conseil municipal"
    assert check_label(unicodedata.normalize("NFD", "Délibérations")) == "Délibérations"
    assert check_label("x" * 255) == "x" * 255
    with pytest.raises(ParafeError) as err:
        check_label("x" * 256)
    assert err.value.error is E.LABEL_TOO_LONG
    assert err.value.message == "Le libellé ne doit pas excéder 255 caractères."
    for bad in ("a/b", "a\\b", "a\x00b", "a\nb"):
        with pytest.raises(ParafeError) as err:
            check_label(bad)
        assert err.value.error is E.BAD_CHARACTERS


@pytest.mark.parametrize(("now", "label"), [
    (datetime(2024, 6, 30, 21, 59, tzinfo=UTC), "2024-06-30"),   # 23:59 in Paris (summer, UTC+2)
    (datetime(2024, 6, 30, 22, 0, tzinfo=UTC), "2024-07-01"),    # midnight in Paris
    (datetime(2024, 12, 31, 23, 0, tzinfo=UTC), "2025-01-01"),   # winter, UTC+1
    (datetime(2024, 12, 31, 22, 59), "2024-12-31"),              # naive = UTC
    (datetime(2024, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=5))), "2024-02-29"),
])
def test_default_label_is_the_paris_date(now: datetime, label: str) -> None:
    assert default_label(now) == label


def test_default_label_now() -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", default_label())
