"""What one untrusted PDF may cost (issue 18): the limits of :class:`parafe.formats.pdf.PdfLimits`, checked in the
bounded child process of :mod:`parafe.formats.sandbox`, never in the caller's process."""

from __future__ import annotations

import resource
from pathlib import Path

import pikepdf
import pytest

from parafe.devtools.hostile_pdf import write_deep_tree, write_many_pages
from parafe.domain.errors import E, ParafeError
from parafe.formats.pdf import PdfLimits, announced_objects, inspect_pdf


def _refusal(path: Path, limits: PdfLimits) -> ParafeError:
    with pytest.raises(ParafeError) as info:
        inspect_pdf(path, limits)
    return info.value


def test_generated_files_are_valid_pdfs(tmp_path: Path) -> None:
    many, deep = tmp_path / "many.pdf", tmp_path / "deep.pdf"
    write_many_pages(many, 50)
    write_deep_tree(deep, 5)
    with pikepdf.open(many) as pdf:
        assert len(pdf.pages) == 50
    with pikepdf.open(deep) as pdf:
        assert len(pdf.pages) == 1
    assert inspect_pdf(many).pages == 50
    assert inspect_pdf(deep).pages == 1
    assert announced_objects(many) == 53


def test_page_limit(tmp_path: Path) -> None:
    path = tmp_path / "pages.pdf"
    write_many_pages(path, 30)
    assert inspect_pdf(path, PdfLimits(max_pages=30)).pages == 30
    error = _refusal(path, PdfLimits(max_pages=29))
    assert error.error is E.PDF_TOO_COMPLEX
    assert error.code == 257
    assert error.message == "Fichier refusé : le document PDF dépasse les limites autorisées (30 pages, au plus 29)."


def test_announced_object_count_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "objects.pdf"
    write_many_pages(path, 100)
    error = _refusal(path, PdfLimits(max_objects=50))
    assert error.error is E.PDF_TOO_COMPLEX
    assert "103 objets, au plus 50" in error.message
    assert error.developer_message.endswith("announced object count over the limit")


def test_a_file_that_lies_about_its_size_is_counted_in_the_child(tmp_path: Path) -> None:
    """The trailer announces 10 objects: the quick check lets it through, the child counts the pages."""
    path = tmp_path / "liar.pdf"
    write_many_pages(path, 2_000, announced_size=10)
    assert announced_objects(path) == 10
    error = _refusal(path, PdfLimits(max_pages=1_000))
    assert error.error is E.PDF_TOO_COMPLEX
    assert "2000 pages" in error.message


def test_nesting_limit(tmp_path: Path) -> None:
    path = tmp_path / "deep.pdf"
    write_deep_tree(path, 40)
    assert inspect_pdf(path, PdfLimits(max_depth=64)).pages == 1
    error = _refusal(path, PdfLimits(max_depth=20))
    assert error.error is E.PDF_TOO_COMPLEX
    assert "trop profonde" in error.message


@pytest.mark.slow
def test_memory_limit_of_the_child_and_nothing_kept_here(tmp_path: Path) -> None:
    """With the page and object limits out of the way, 300,000 pages need more than the child's 160 MB: the
    child is stopped by its address-space limit and the file refused; this process's peak does not move."""
    path = tmp_path / "huge.pdf"
    write_many_pages(path, 300_000)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    error = _refusal(path, PdfLimits(max_pages=10**7, max_objects=10**7, memory_mb=160))
    assert error.error is E.PDF_TOO_COMPLEX, error.developer_message
    assert "mémoire" in error.message, error.developer_message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 20 * 1024  # KiB
