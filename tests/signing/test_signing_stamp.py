"""Pictogram geometry and text: cm → points, page numbers, page rotation, wire formats."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import parafe.signing as signing
from parafe.signing.errors import PdfSigningError
from parafe.signing.stamp import CM, StampSpec, place_stamp, render_appearance, resolve_page_index, stamp_lines


def test_cm_and_wire_formats() -> None:
    s = StampSpec.parse_pictogramme("2.5,3,-1")
    assert (s.x, s.y, s.page) == (pytest.approx(2.5 * CM), pytest.approx(3 * CM), -1)
    assert StampSpec.parse_pictogramme(" 1 , 2 ").page == 1
    j = StampSpec.from_json_pictogram('{"x": 60, "y": 60, "width": 200, "height": 100, "page": 1}')
    assert (j.x, j.y, j.width, j.height, j.page) == (60, 60, 200, 100, 1)
    for bad in ("1", "a,b", "1,2,3,4"):
        with pytest.raises(PdfSigningError):
            StampSpec.parse_pictogramme(bad)
    with pytest.raises(PdfSigningError):
        StampSpec(x=1, y=1, page=0)


def test_page_numbers() -> None:
    assert resolve_page_index(1, 5) == 0
    assert resolve_page_index(5, 5) == 4
    assert resolve_page_index(-1, 5) == 4
    assert resolve_page_index(-5, 5) == 0
    for bad in (6, -6):
        with pytest.raises(PdfSigningError):
            resolve_page_index(bad, 5)


@pytest.mark.parametrize(("rotate", "rect"), [
    (0, (10 + 100, 20 + 50, 10 + 300, 20 + 130)),
    (90, (610 - 130, 20 + 100, 610 - 50, 20 + 300)),
    (180, (610 - 300, 860 - 130, 610 - 100, 860 - 50)),
    (270, (10 + 50, 860 - 300, 10 + 130, 860 - 100)),
])
def test_rotation_maps_the_displayed_bottom_left(rotate: int, rect: tuple[float, ...]) -> None:
    spec = StampSpec(x=100, y=50, width=200, height=80)
    placement = place_stamp(spec, (10, 20, 610, 860), rotate)
    assert placement.rect == pytest.approx(rect)


def test_text_lines_in_paris_time() -> None:
    spec = StampSpec(x=0, y=0, quality="Maire", extra_lines=("Délibération 12",))
    lines = stamp_lines(spec, "Jean Dupont", datetime(2026, 7, 14, 10, 30, tzinfo=UTC))
    assert [t for t, _ in lines] == ["Signé électroniquement par", "Jean Dupont", "Maire",
                                     "le 14/07/2026 à 12:30", "Délibération 12"]
    app = render_appearance(spec, lines)
    assert b"(Sign\xe9 \\\\" not in app.content
    assert b"(Sign\xe9 \xe9lectroniquement par) Tj" in app.content
    long = render_appearance(StampSpec(x=0, y=0, width=60, height=20), [("x" * 200, False)])
    assert "…".encode("cp1252") in long.content  # truncated, never drawn outside the box


def test_package_exports_lazily() -> None:
    assert signing.sign_pdf.__module__ == "parafe.signing.pades"
    assert signing.BulkPdfSigner.__name__ == "BulkPdfSigner"
    with pytest.raises(AttributeError):
        _ = signing.nothing_here
