"""Signature pictogram: placement (cm → points, page index, page rotation) and appearance stream.

The same appearance (content stream + resources) is drawn by the pyHanko path (:mod:`parafe.signing.pades`)
and by the bulk writer (:mod:`parafe.signing.fastpdf`), so a pictogram looks the same whatever the path.

``StampSpec`` positions the pictogram by its bottom-left corner, in PDF points from the bottom-left corner of
the page *as displayed* (``/Rotate`` and the crop box are taken into account). Constructors:

- ``StampSpec.from_cm(x_cm, y_cm, page=1)`` — the OSS ``pictogramme`` convention (DECISIONS D7);
- ``StampSpec.parse_pictogramme("x,y[,page]")`` — the same from the wire string;
- ``StampSpec.from_json_pictogram({"x": 60, "y": 60, "width": 200, "height": 100, "page": 1})`` — points.

``page`` is 1-based; a negative page counts from the end (``-1`` = last page). The text (French) is:
"Signé électroniquement par", the signer's name, the quality, "le JJ/MM/AAAA à HH:MM" (Europe/Paris), then the
optional metadata lines; an optional image (PNG/JPEG) is drawn on the left.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from reportlab.pdfbase.pdfmetrics import stringWidth

from parafe.domain.paris_time import stamp_text
from parafe.signing.errors import PdfSigningError

__all__ = [
    "CM",
    "Appearance",
    "PreparedImage",
    "StampSpec",
    "place_stamp",
    "render_appearance",
    "resolve_page_index",
    "stamp_lines",
]

CM = 72.0 / 2.54

FONT_REGULAR = "Helvetica"
FONT_BOLD = "Helvetica-Bold"
_MAX_FONT = 9.0
_MIN_FONT = 4.0
_PAD = 4.0


@dataclass(frozen=True)
class StampSpec:
    """Where and what the visible pictogram shows. Units are PDF points (1/72 inch)."""

    x: float
    y: float
    page: int = 1
    width: float = 200.0
    height: float = 80.0
    signer_name: str | None = None  # default: the certificate's common name
    quality: str | None = None  # e.g. "Maire", "Directeur général des services"
    extra_lines: tuple[str, ...] = ()  # metadata lines
    image: bytes | None = field(default=None, repr=False)  # PNG or JPEG

    def __post_init__(self) -> None:
        if self.page == 0:
            raise PdfSigningError("Numéro de page invalide : 0 (les pages sont numérotées à partir de 1).")
        if self.width <= 0 or self.height <= 0:
            raise PdfSigningError("Dimensions du pictogramme invalides.")

    @classmethod
    def from_cm(
        cls, x_cm: float, y_cm: float, page: int = 1, *, width_cm: float | None = None,
        height_cm: float | None = None, **kw: Any,
    ) -> StampSpec:
        """Bottom-left corner in centimetres (the OSS ``pictogramme`` unit)."""
        if width_cm is not None:
            kw["width"] = width_cm * CM
        if height_cm is not None:
            kw["height"] = height_cm * CM
        return cls(x=x_cm * CM, y=y_cm * CM, page=page, **kw)

    @classmethod
    def parse_pictogramme(cls, value: str, **kw: Any) -> StampSpec:
        """Parse ``"x,y[,page]"`` (centimetres, decimal point or comma-free), as sent by OSS clients."""
        parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
        if len(parts) not in (2, 3):
            raise PdfSigningError(f"Position du pictogramme invalide : « {value} » (attendu x,y[,page]).")
        try:
            x, y = float(parts[0]), float(parts[1])
            page = int(parts[2]) if len(parts) == 3 else 1
        except ValueError:
            raise PdfSigningError(f"Position du pictogramme invalide : « {value} ».") from None
        return cls.from_cm(x, y, page, **kw)

    @classmethod
    def from_json_pictogram(cls, value: Mapping[str, Any] | str, **kw: Any) -> StampSpec:
        """``{"x", "y", "width", "height", "page"}`` in points (the ``jsonPictogram`` parameter)."""
        obj = json.loads(value) if isinstance(value, str) else value
        try:
            args: dict[str, Any] = {"x": float(obj["x"]), "y": float(obj["y"])}
            if "width" in obj:
                args["width"] = float(obj["width"])
            if "height" in obj:
                args["height"] = float(obj["height"])
            if "page" in obj:
                args["page"] = int(obj["page"])
        except (KeyError, TypeError, ValueError):
            raise PdfSigningError("Pictogramme JSON invalide (x, y, width, height, page).") from None
        args.update(kw)
        return cls(**args)


# --- geometry ------------------------------------------------------------------------------------------------
def resolve_page_index(page: int, n_pages: int) -> int:
    """1-based page number (negative: from the end) → 0-based index; error when out of range."""
    idx = page - 1 if page > 0 else n_pages + page
    if page == 0 or not 0 <= idx < n_pages:
        raise PdfSigningError(f"La page {page} n'existe pas (le document compte {n_pages} page(s)).")
    return idx


@dataclass(frozen=True)
class Placement:
    """The widget rectangle in default user space and the appearance matrix undoing the page rotation."""

    rect: tuple[float, float, float, float]
    matrix: tuple[float, float, float, float, float, float]


def place_stamp(
    spec: StampSpec, page_box: Sequence[float], rotate: int = 0
) -> Placement:
    """Map the displayed-page position of ``spec`` to user space for a page with ``page_box``/``/Rotate``.

    ``page_box`` is the visible box (crop box, else media box) ``(llx, lly, urx, ury)``.
    """
    llx, lly, urx, ury = (float(v) for v in page_box)
    llx, urx = min(llx, urx), max(llx, urx)
    lly, ury = min(lly, ury), max(lly, ury)
    r = int(rotate) % 360
    if r % 90:
        r = 0

    def to_user(px: float, py: float) -> tuple[float, float]:
        if r == 90:
            return urx - py, lly + px
        if r == 180:
            return urx - px, ury - py
        if r == 270:
            return llx + py, ury - px
        return llx + px, lly + py

    corners = [to_user(spec.x, spec.y), to_user(spec.x + spec.width, spec.y),
               to_user(spec.x, spec.y + spec.height), to_user(spec.x + spec.width, spec.y + spec.height)]
    xs = [c[0] for c in corners]
    ys = [c[1] for c in corners]
    matrix = {0: (1, 0, 0, 1, 0, 0), 90: (0, 1, -1, 0, 0, 0), 180: (-1, 0, 0, -1, 0, 0),
              270: (0, -1, 1, 0, 0, 0)}[r]
    return Placement(rect=(min(xs), min(ys), max(xs), max(ys)), matrix=tuple(float(m) for m in matrix))  # type: ignore[arg-type]


# --- text ---------------------------------------------------------------------------------------------------
def stamp_lines(spec: StampSpec, signer_name: str, when: datetime) -> list[tuple[str, bool]]:
    """The pictogram's lines as ``(text, bold)``."""
    lines: list[tuple[str, bool]] = [("Signé électroniquement par", False), (spec.signer_name or signer_name, True)]
    if spec.quality:
        lines.append((spec.quality, False))
    lines.append((stamp_text(when), False))
    lines.extend((line, False) for line in spec.extra_lines if line)
    return lines


# --- image ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreparedImage:
    """An image ready to become a PDF image XObject (and its soft mask)."""

    width: int
    height: int
    colorspace: str  # "/DeviceRGB" or "/DeviceGray"
    filter: str  # "/FlateDecode" or "/DCTDecode"
    data: bytes
    smask: bytes | None  # Flate-compressed 8-bit alpha, same size


@lru_cache(maxsize=16)
def prepare_image(data: bytes) -> PreparedImage:
    """Decode a PNG/JPEG once into PDF image data (cached by content)."""
    from PIL import Image

    try:
        img: Image.Image = Image.open(io.BytesIO(data))
        img.load()
    except Exception as exc:  # Pillow raises several classes
        raise PdfSigningError(f"Image du pictogramme illisible : {exc}") from exc
    if img.format == "JPEG" and img.mode in ("RGB", "L"):
        return PreparedImage(img.width, img.height, "/DeviceRGB" if img.mode == "RGB" else "/DeviceGray",
                             "/DCTDecode", data, None)
    smask = None
    if img.mode in ("RGBA", "LA", "P", "PA"):
        rgba = img.convert("RGBA")
        smask = zlib.compress(rgba.getchannel("A").tobytes(), 6)
        img = rgba.convert("RGB")
    elif img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    cs = "/DeviceRGB" if img.mode == "RGB" else "/DeviceGray"
    return PreparedImage(img.width, img.height, cs, "/FlateDecode", zlib.compress(img.tobytes(), 6), smask)


# --- appearance ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Appearance:
    """Content stream of the pictogram's form XObject (BBox ``0 0 width height``).

    Resource names used: ``/F1`` (Helvetica, WinAnsiEncoding), ``/F2`` (Helvetica-Bold), ``/Im1`` (image).
    """

    content: bytes
    width: float
    height: float
    image: PreparedImage | None


def _num(v: float) -> str:
    s = f"{v:.3f}".rstrip("0").rstrip(".")
    return s if s not in ("", "-0") else "0"


def pdf_literal(text: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding (characters outside it become '?')."""
    raw = text.encode("cp1252", errors="replace")
    out = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    out = out.replace(b"\r", b"\\r").replace(b"\n", b"\\n")
    return b"(" + out + b")"


def _text_width(text: str, bold: bool, size: float) -> float:
    safe = text.encode("cp1252", errors="replace").decode("cp1252")
    return float(stringWidth(safe, FONT_BOLD if bold else FONT_REGULAR, size))


def _fit(text: str, bold: bool, size: float, avail: float) -> str:
    if _text_width(text, bold, size) <= avail:
        return text
    while text and _text_width(text + "…", bold, size) > avail:
        text = text[:-1]
    return text + "…"


def render_appearance(spec: StampSpec, lines: Sequence[tuple[str, bool]]) -> Appearance:
    """Draw the pictogram: white box, blue frame, optional image on the left, then the text lines."""
    w, h = spec.width, spec.height
    image = prepare_image(spec.image) if spec.image else None
    ops: list[str] = ["q", f"1 1 1 rg 0 0 {_num(w)} {_num(h)} re f",
                      f"0.13 0.23 0.49 RG 0.8 w 0.4 0.4 {_num(w - 0.8)} {_num(h - 0.8)} re S"]
    text_x = _PAD + 1
    if image is not None:
        box = max(min(h - 2 * _PAD, w / 3), 1.0)
        scale = min(box / image.width, box / image.height)
        iw, ih = image.width * scale, image.height * scale
        ix, iy = _PAD + (box - iw) / 2, (h - ih) / 2
        ops.append(f"q {_num(iw)} 0 0 {_num(ih)} {_num(ix)} {_num(iy)} cm /Im1 Do Q")
        text_x = _PAD + box + _PAD
    avail_w = max(w - text_x - _PAD, 1.0)
    avail_h = max(h - 2 * _PAD, 1.0)
    n = max(len(lines), 1)
    size = min(_MAX_FONT, avail_h / (n * 1.2))
    widest = max((_text_width(t, b, 1.0) for t, b in lines), default=1.0)
    if widest * size > avail_w:
        size = avail_w / widest
    size = max(size, _MIN_FONT)
    leading = size * 1.2
    block = leading * (n - 1) + size
    top = (h + block) / 2 - size  # baseline of the first line, block centred vertically
    ops.append(f"BT 0.1 0.1 0.1 rg {_num(leading)} TL {_num(text_x)} {_num(top)} Td")
    current: str | None = None
    for i, (text, bold) in enumerate(lines):
        font = "/F2" if bold else "/F1"
        if font != current:
            ops.append(f"{font} {_num(size)} Tf")
            current = font
        if i:
            ops.append("T*")
        ops.append(pdf_literal(_fit(text, bold, size, avail_w)).decode("latin-1") + " Tj")
    ops.extend(["ET", "Q"])
    return Appearance("\n".join(ops).encode("latin-1"), w, h, image)
