"""Sample files shared by the bench scripts: well-formed PDFs of a chosen size.

A PDF is grown to its size by page content (text drawn without compression), so that it stays a valid PDF
whose ``startxref`` is where readers look for it: padding it after ``startxref`` (inside a comment) makes
every PDF reader reconstruct the cross-reference table by scanning the whole file, which is not what a real
100 KB PDF costs. Distinct copies differ by a comment appended after ``%%EOF`` (a few bytes, allowed).
"""

from __future__ import annotations

import io


def pdf_of_size(size: int, seed: str) -> bytes:
    """A one-page valid PDF of about ``size`` bytes (at least the size of an empty page)."""
    from reportlab.pdfgen import canvas

    def build(lines: int) -> bytes:
        buf = io.BytesIO()
        c = canvas.Canvas(buf, pageCompression=0)
        c.drawString(72, 720, f"bench {seed}")
        for i in range(lines):
            c.drawString(72, 700 - (i % 60) * 10, f"{seed} ligne {i:06d} lorem ipsum dolor sit amet consectetur")
        c.showPage()
        c.save()
        return buf.getvalue()

    base = len(build(0))
    per_line = max(1, len(build(10)) - base) / 10
    return build(max(0, int((size - base) / per_line)))


def distinct(base: bytes, tag: str) -> bytes:
    """``base`` made unique by a trailing comment after ``%%EOF``."""
    return base + f"%{tag}\n".encode()
