"""Hostile PDFs for the tests and benches of issue 18, written object by object (no PDF library: a library
would need the memory the file is meant to cost).

:func:`write_many_pages` writes a valid PDF of ``pages`` empty pages in one flat page tree (1,000,000 pages:
about 96 MiB, in a few seconds): each page is a tiny object, so that the cost for a reader is in the object
count and the page tree, not in the bytes.
"""

from __future__ import annotations

from pathlib import Path

_PAGE = b" 0 obj\n<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>\nendobj\n"
_BATCH = 10_000


def write_many_pages(path: Path, pages: int, *, announced_size: int | None = None) -> int:
    """Write the PDF; returns its size in bytes. ``announced_size`` replaces the trailer's ``/Size`` (a file
    that lies about its object count)."""
    offsets: list[int] = []
    with open(path, "wb") as fh:
        pos = 0

        def write(data: bytes) -> None:
            nonlocal pos
            fh.write(data)
            pos += len(data)

        write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets.append(pos)
        write(b"1 0 obj\n<</Type/Catalog/Pages 2 0 R>>\nendobj\n")
        offsets.append(pos)
        write(b"2 0 obj\n<</Type/Pages/Count %d/Kids[" % pages)
        for start in range(0, pages, _BATCH):
            write(b"".join(b"%d 0 R " % (n + 3) for n in range(start, min(start + _BATCH, pages))))
        write(b"]>>\nendobj\n")
        for start in range(0, pages, _BATCH):
            batch = []
            for n in range(start, min(start + _BATCH, pages)):
                item = b"%d" % (n + 3) + _PAGE
                offsets.append(pos)
                batch.append(item)
                pos += len(item)
            fh.write(b"".join(batch))
        xref = pos
        count = len(offsets) + 1
        write(b"xref\n0 %d\n0000000000 65535 f \n" % count)
        for start in range(0, len(offsets), _BATCH):
            write(b"".join(b"%010d 00000 n \n" % o for o in offsets[start:start + _BATCH]))
        write(b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (announced_size or count, xref))
    return pos


def write_deep_tree(path: Path, depth: int) -> int:
    """Write a one-page PDF whose page sits under ``depth`` nested ``/Pages`` nodes; returns its size."""
    objects: list[bytes] = [b"<</Type/Catalog/Pages 2 0 R>>"]
    for level in range(depth):
        number = level + 2
        parent = f"/Parent {number - 1} 0 R" if level else ""
        objects.append(f"<</Type/Pages{parent}/Count 1/Kids[{number + 1} 0 R]>>".encode())
    objects.append(f"<</Type/Page/Parent {depth + 1} 0 R/MediaBox[0 0 612 792]/Resources<<>>>>".encode())
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return len(out)
