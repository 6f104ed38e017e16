"""Zip bundles (§6.6): every check before extraction, bombs refused with bounded memory and disk."""

from __future__ import annotations

import os
import stat
import struct
import tracemalloc
import unicodedata
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from parafe.domain.errors import E, ParafeError
from parafe.formats.bundle import Bundle, is_bundle_name, open_bundle

MIB = 1024 * 1024
LIMITS = {"max_total_bytes": 100 * MIB, "max_ratio": 100, "max_entries": 50}
PDF = b"%PDF-1.4\n" + b"x" * 200
METAS = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<meta-data-list>\n'
         b'    <meta-data name="TEXT001" value="John"/>\n</meta-data-list>\n')


def _zip(path: Path, entries: Sequence[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def _open(tmp_path: Path, zip_path: Path, zip_name: str, **limits: int) -> Bundle:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return open_bundle(zip_path, zip_name, work, **{**LIMITS, **limits})


def _refused(tmp_path: Path, zip_path: Path, zip_name: str = "bonjour.pdf.zip", **limits: int) -> ParafeError:
    with pytest.raises(ParafeError) as err:
        _open(tmp_path, zip_path, zip_name, **limits)
    work = tmp_path / "work"
    assert not work.exists() or list(work.iterdir()) == [], "a refused bundle must leave nothing behind"
    return err.value


@pytest.mark.parametrize(("name", "expected"), [
    ("bonjour.pdf.zip", True), ("BONJOUR.PDF.ZIP", True), ("pes.xml.zip", True), ("a.b.c.zip", True),
    ("archive.zip", False), ("bonjour.pdf", False), (".pdf.zip", False), ("bonjour..zip", False),
    ("zip", False), (".zip", False),
])
def test_is_bundle_name(name: str, expected: bool) -> None:
    assert is_bundle_name(name) is expected


def test_spec_example_bundle(tmp_path: Path) -> None:
    path = _zip(tmp_path / "bonjour.pdf.zip", [
        ("bonjour.pdf", PDF), ("bonjour2.pdf", PDF + b"2"), ("hjiglshklgsd.pdf", PDF + b"3"),
        ("qfjdlvgfsdv.xml", b"<a/>"), ("METAS_bonjour.pdf.xml", METAS)])
    bundle = _open(tmp_path, path, "bonjour.pdf.zip")
    assert bundle.main_name == "bonjour.pdf"
    assert bundle.main.read_bytes() == PDF
    assert [name for name, _ in bundle.annexes] == ["bonjour2.pdf", "hjiglshklgsd.pdf", "qfjdlvgfsdv.xml"]
    assert [p.read_bytes() for _, p in bundle.annexes] == [PDF + b"2", PDF + b"3", b"<a/>"]
    assert bundle.metas is not None
    assert bundle.metas.read_bytes() == METAS
    for file in [bundle.main, bundle.metas, *(p for _, p in bundle.annexes)]:
        assert file.parent == tmp_path / "work"


def test_bundle_without_metas_and_annexes(tmp_path: Path) -> None:
    bundle = _open(tmp_path, _zip(tmp_path / "z.zip", [("pes.xml", b"<x/>")]), "pes.xml.zip")
    assert bundle.main_name == "pes.xml"
    assert bundle.annexes == []
    assert bundle.metas is None


def test_metas_of_another_name_is_an_annex(tmp_path: Path) -> None:
    path = _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), ("METAS_autre.pdf.xml", METAS)])
    bundle = _open(tmp_path, path, "bonjour.pdf.zip")
    assert bundle.metas is None
    assert [n for n, _ in bundle.annexes] == ["METAS_autre.pdf.xml"]


def test_main_missing(tmp_path: Path) -> None:
    err = _refused(tmp_path, _zip(tmp_path / "z.zip", [("bonjour2.pdf", PDF)]))
    assert err.error is E.BUNDLE_MAIN_MISSING
    assert err.message == "Archive ZIP refusée : le document principal « bonjour.pdf » est absent de l'archive."


def test_annex_extension_not_allowed(tmp_path: Path) -> None:
    err = _refused(tmp_path, _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), ("script.py", b"print(1)")]))
    assert err.error is E.EXTENSION_NOT_ALLOWED


@pytest.mark.parametrize("name", ["../evil.pdf", "a/../../evil.pdf", "..\\evil.pdf", "..", "x/.."])
def test_traversal(tmp_path: Path, name: str) -> None:
    err = _refused(tmp_path, _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), (name, PDF)]))
    assert err.error in (E.BUNDLE_INVALID, E.BAD_CHARACTERS)
    assert err.error is E.BUNDLE_INVALID or name == ".."


@pytest.mark.parametrize("name", ["/etc/evil.pdf", "\\evil.pdf", "C:/evil.pdf", "C:evil.pdf"])
def test_absolute_names(tmp_path: Path, name: str) -> None:
    err = _refused(tmp_path, _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), (name, PDF)]))
    assert err.error is E.BUNDLE_INVALID
    assert "absolu" in err.message


def test_directory_entry(tmp_path: Path) -> None:
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("bonjour.pdf", PDF)
        zf.mkdir("annexes")
    err = _refused(tmp_path, path)
    assert err.error is E.BUNDLE_INVALID
    assert "racine" in err.message


def test_file_in_a_subdirectory(tmp_path: Path) -> None:
    err = _refused(tmp_path, _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), ("annexes/a.pdf", PDF)]))
    assert err.error is E.BUNDLE_INVALID
    assert err.message == ("Archive ZIP refusée : tous les fichiers doivent être posés à la racine "
                           "(aucun répertoire ne doit être présent).")


def test_symlink(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("annexe.pdf")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    err = _refused(tmp_path, _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), (link, b"/etc/passwd")]))
    assert err.error is E.BUNDLE_INVALID
    assert "lien symbolique" in err.message


def test_fifo_entry(tmp_path: Path) -> None:
    fifo = zipfile.ZipInfo("annexe.pdf")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    err = _refused(tmp_path, _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), (fifo, PDF)]))
    assert err.error is E.BUNDLE_INVALID


def test_regular_unix_file_is_fine(tmp_path: Path) -> None:
    regular = zipfile.ZipInfo("annexe.pdf")
    regular.create_system = 3
    regular.external_attr = (stat.S_IFREG | 0o644) << 16
    bundle = _open(tmp_path, _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), (regular, PDF)]), "bonjour.pdf.zip")
    assert [n for n, _ in bundle.annexes] == ["annexe.pdf"]


def test_nested_zip_by_name(tmp_path: Path) -> None:
    inner = _zip(tmp_path / "inner.zip", [("a.pdf", PDF)]).read_bytes()
    err = _refused(tmp_path, _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), ("inner.zip", inner)]))
    assert err.error is E.BUNDLE_INVALID
    assert "imbriquée" in err.message


def test_nested_zip_in_disguise(tmp_path: Path) -> None:
    inner = _zip(tmp_path / "inner.zip", [("a.pdf", PDF)]).read_bytes()
    err = _refused(tmp_path, _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), ("annexe.pdf", inner)]))
    assert err.error is E.BUNDLE_INVALID
    assert "imbriquée" in err.message


def test_office_documents_are_not_nested_archives(tmp_path: Path) -> None:
    docx = _zip(tmp_path / "doc.docx", [("word/document.xml", b"<w/>")]).read_bytes()
    bundle = _open(tmp_path, _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), ("rapport.docx", docx)]),
                   "bonjour.pdf.zip")
    assert [n for n, _ in bundle.annexes] == ["rapport.docx"]


def test_too_many_entries(tmp_path: Path) -> None:
    entries = [("bonjour.pdf", PDF)] + [(f"a{i}.pdf", PDF) for i in range(10)]
    err = _refused(tmp_path, _zip(tmp_path / "z.zip", entries), max_entries=5)
    assert err.error is E.BUNDLE_INVALID


def test_duplicate_names_after_nfc(tmp_path: Path) -> None:
    nfc = "é.pdf"
    nfd = unicodedata.normalize("NFD", nfc)
    err = _refused(tmp_path, _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), (nfc, PDF), (nfd, PDF)]))
    assert err.error is E.BUNDLE_INVALID


def test_entry_names_are_nfc_normalised(tmp_path: Path) -> None:
    main = "Délibération.pdf"
    path = _zip(tmp_path / "z.zip", [(unicodedata.normalize("NFD", main), PDF),
                                     (unicodedata.normalize("NFD", "annexe é.pdf"), PDF)])
    bundle = _open(tmp_path, path, unicodedata.normalize("NFD", main) + ".zip")
    assert bundle.main_name == main
    assert bundle.annexes[0][0] == "annexe é.pdf"


def test_cp437_names_without_utf8_flag(tmp_path: Path) -> None:
    """Windows' built-in zip writes OEM names without the UTF-8 flag: read them as the zip spec says."""
    path = _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), ("annexe-X.pdf", PDF)])
    path.write_bytes(path.read_bytes().replace(b"annexe-X.pdf", b"annexe-\x82.pdf"))  # 0x82 is 'é' in cp437
    with zipfile.ZipFile(path) as zf:
        assert not zf.infolist()[1].flag_bits & 0x800
    assert _open(tmp_path, path, "bonjour.pdf.zip").annexes[0][0] == "annexe-é.pdf"


def test_unflagged_utf8_names(tmp_path: Path) -> None:
    """Many Unix tools write UTF-8 names without setting the flag."""
    path = _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), ("annexe-XX.pdf", PDF)])
    path.write_bytes(path.read_bytes().replace(b"annexe-XX.pdf", "annexe-é.pdf".encode()))
    with zipfile.ZipFile(path) as zf:
        assert not zf.infolist()[1].flag_bits & 0x800
    assert _open(tmp_path, path, "bonjour.pdf.zip").annexes[0][0] == "annexe-é.pdf"


@pytest.mark.parametrize("name", ["bad\x01name.pdf", "tab\tname.pdf", "x" * 147 + ".pdf"])
def test_entry_names_follow_the_deposit_rules(tmp_path: Path, name: str) -> None:
    err = _refused(tmp_path, _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), (name, PDF)]))
    assert err.error in (E.BAD_CHARACTERS, E.NAME_TOO_LONG)
    assert err.error is (E.NAME_TOO_LONG if len(name) > 150 else E.BAD_CHARACTERS)


def test_encrypted_entry(tmp_path: Path) -> None:
    path = _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), ("a.pdf", PDF)])
    data = bytearray(path.read_bytes())
    # set the "encrypted" bit (bit 0 of the general purpose flags) in every header
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start + flag_offset] |= 1
            start += 4
    path.write_bytes(bytes(data))
    err = _refused(tmp_path, path)
    assert err.error is E.BUNDLE_INVALID
    assert "chiffrée" in err.message


NOISE = bytes((i * 37 + 11) % 256 for i in range(200))


@pytest.mark.parametrize("data", [b"not a zip at all", b"PK\x03\x04" + NOISE, b"\x00" * 30],
                         ids=["text", "local-header-then-noise", "zeros"])
def test_not_a_zip(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "z.zip"
    path.write_bytes(data)
    assert _refused(tmp_path, path).error is E.BUNDLE_INVALID


def test_corrupt_data(tmp_path: Path) -> None:
    path = _zip(tmp_path / "z.zip", [("bonjour.pdf", os.urandom(50_000))])
    data = bytearray(path.read_bytes())
    for i in range(200, 400):  # inside the (stored-as-deflate) data of the only entry
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    err = _refused(tmp_path, path)
    assert err.error is E.BUNDLE_INVALID
    assert "corrompue" in err.message


def test_truncated_zip(tmp_path: Path) -> None:
    path = _zip(tmp_path / "z.zip", [("bonjour.pdf", os.urandom(50_000))])
    path.write_bytes(path.read_bytes()[:30_000])
    assert _refused(tmp_path, path).error is E.BUNDLE_INVALID


def test_empty_zip_file(tmp_path: Path) -> None:
    path = tmp_path / "z.zip"
    path.write_bytes(b"")
    assert _refused(tmp_path, path).error is E.EMPTY_FILE


def test_zip_without_entries(tmp_path: Path) -> None:
    assert _refused(tmp_path, _zip(tmp_path / "z.zip", [])).error is E.EMPTY_FILE


def test_empty_main_document(tmp_path: Path) -> None:
    assert _refused(tmp_path, _zip(tmp_path / "z.zip", [("bonjour.pdf", b"")])).error is E.EMPTY_FILE


def test_small_highly_compressible_files_are_fine(tmp_path: Path) -> None:
    blank = b" " * 500_000  # compresses ~1000:1, but is small
    bundle = _open(tmp_path, _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF), ("blank.txt", blank)]),
                   "bonjour.pdf.zip")
    assert bundle.annexes[0][1].read_bytes() == blank


def test_declared_total_over_the_limit(tmp_path: Path) -> None:
    path = _zip(tmp_path / "z.zip", [("bonjour.pdf", os.urandom(600_000)), ("a.pdf", os.urandom(600_000))])
    err = _refused(tmp_path, path, max_total_bytes=1_000_000)
    assert err.error is E.BUNDLE_INVALID
    assert "volumineuse" in err.message


# --- a 1 GiB expansion, crafted in a streaming way (1 MiB of memory, ~1 MiB of disk) ----------------------


@pytest.fixture(scope="module")
def gib_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "bonjour.pdf.zip"
    zeros = bytes(MIB)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf, \
            zf.open("bonjour.pdf", "w") as entry:
        for _ in range(1024):
            entry.write(zeros)
    assert path.stat().st_size < 2 * MIB
    return path


def _lie_about_size(source: Path, target: Path, declared: int) -> Path:
    """Copy ``source`` with the first entry's uncompressed size rewritten in both headers."""
    data = bytearray(source.read_bytes())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, declared)
    struct.pack_into("<I", data, central + 24, declared)
    target.write_bytes(bytes(data))
    return target


def _disk_used(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir()) if folder.exists() else 0


def test_gib_bomb_refused_from_its_declared_sizes(tmp_path: Path, gib_bomb: Path) -> None:
    with zipfile.ZipFile(gib_bomb) as zf:
        assert zf.infolist()[0].file_size == 1024 * MIB
    tracemalloc.start()
    try:
        err = _refused(tmp_path, gib_bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.error is E.BUNDLE_INVALID
    assert peak < 4 * MIB


def test_gib_bomb_refused_by_ratio_alone(tmp_path: Path, gib_bomb: Path) -> None:
    err = _refused(tmp_path, gib_bomb, max_total_bytes=2048 * MIB)
    assert err.error is E.BUNDLE_INVALID
    assert "compression" in err.message


@pytest.mark.parametrize("declared", [50_000, 8 * MIB])
def test_gib_bomb_with_lying_headers(tmp_path: Path, gib_bomb: Path, declared: int) -> None:
    """Headers claim a small size (ratio and total pass): extraction must stop at the declared size."""
    liar = _lie_about_size(gib_bomb, tmp_path / "liar.zip", declared)
    work = tmp_path / "work"
    tracemalloc.start()
    try:
        with pytest.raises(ParafeError) as err:
            _open(tmp_path, liar, "bonjour.pdf.zip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.error is E.BUNDLE_INVALID
    assert _disk_used(work) == 0
    assert peak < 4 * MIB


def test_lying_header_bigger_than_content(tmp_path: Path) -> None:
    path = _lie_about_size(_zip(tmp_path / "z.zip", [("bonjour.pdf", PDF)]), tmp_path / "liar.zip", 10_000)
    assert _refused(tmp_path, path).error is E.BUNDLE_INVALID


def test_lying_entry_count(tmp_path: Path) -> None:
    """The end-of-central-directory record is read before zipfile builds one object per entry."""
    path = _zip(tmp_path / "z.zip", [("bonjour.pdf", PDF)] + [(f"a{i}.pdf", PDF) for i in range(100)])
    err = _refused(tmp_path, path, max_entries=10)
    assert err.error is E.BUNDLE_INVALID
    assert "trop de fichiers" in err.message


def test_two_bundles_share_a_workdir_and_a_failure_leaves_the_other_intact(tmp_path: Path) -> None:
    good = _zip(tmp_path / "good.zip", [("bonjour.pdf", PDF), ("a.pdf", PDF + b"a")])
    first = _open(tmp_path, good, "bonjour.pdf.zip")
    second = _open(tmp_path, good, "bonjour.pdf.zip")
    assert first.main != second.main
    assert first.main.read_bytes() == second.main.read_bytes() == PDF
    bad = _zip(tmp_path / "bad.zip", [("bonjour.pdf", PDF), ("a.pdf", b"")])
    with pytest.raises(ParafeError) as err:
        _open(tmp_path, bad, "bonjour.pdf.zip")
    assert err.value.error is E.EMPTY_FILE
    assert sorted((tmp_path / "work").iterdir()) == sorted(
        [first.main, second.main, first.annexes[0][1], second.annexes[0][1]])
