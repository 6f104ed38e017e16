"""PDF inspection for deposits: is it a PDF, how many pages, is it write-protected (stack-notes §4).

The measured rule: a PDF is protected when a password is needed to open it, or when it is encrypted without
the right to fill forms or to annotate (a signature adds a form field and its widget annotation), or when a
certification signature forbids all changes (DocMDP P=1). DocMDP P=2 and P=3 still allow signing.
pyHanko signs encrypted "no modification" files anyway, so this policy is ours to apply before signing.

Untrusted PDFs are parsed in a bounded child process (:mod:`parafe.formats.sandbox`, issue 18): what one document
may cost is limited by :class:`PdfLimits` (pages, objects, nesting depth, memory and CPU time of the child), and
a limit passed is refused with ``PDF_TOO_COMPLEX``. The object count announced by the trailer is read from the
end of the file first, in the server process, without parsing anything else. A file that qpdf can only open by
reconstructing it (truncated, damaged cross-reference table) must also open in pyHanko, the signer's own reader:
otherwise it is refused at deposit (``PDF_INVALID``) instead of failing at the signature.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pikepdf

from parafe.domain.errors import E, ParafeError

# Readers accept the header anywhere in the first 1024 bytes (ISO 32000-1 implementation note 13).
_HEADER_WINDOW = 1024
_MAX_FIELD_DEPTH = 32
_TAIL_WINDOW = 4096
# qpdf's warnings that say the file had to be reconstructed (not the benign repairs of a page's attributes)
_DAMAGE_WORDS = ("damaged", "reconstruct", "startxref", "xref", "EOF")
_SIZE = re.compile(rb"/Size\s+(\d{1,12})")
_STARTXREF = re.compile(rb"startxref\s+(\d{1,15})")


@dataclass(frozen=True)
class PdfLimits:
    """What one untrusted PDF may cost (settings ``PARAFE_PDF_*``)."""

    max_pages: int = 10_000
    max_objects: int = 500_000
    max_depth: int = 64
    memory_mb: int = 768
    cpu_seconds: int = 60

    @classmethod
    def from_settings(cls, settings: Any) -> PdfLimits:
        return cls(max_pages=settings.pdf_max_pages, max_objects=settings.pdf_max_objects,
                   max_depth=settings.pdf_max_depth, memory_mb=settings.pdf_check_memory_mb,
                   cpu_seconds=settings.pdf_check_seconds)


@dataclass
class PdfInfo:
    """What the deposit and the signature need to know about a PDF."""

    pages: int  # 0 when the document cannot be opened without a password
    encrypted: bool
    protected: bool
    reason: str | None  # why it is protected (English, for the developer message)
    docmdp: int | None  # P of the certification signature, if any
    signature_count: int  # signed signature fields


def _docmdp(pdf: pikepdf.Pdf) -> int | None:
    """P of the DocMDP transform: from ``/Perms /DocMDP``, else from any signature's ``/Reference``."""
    candidates: list[Any] = []
    perms = pdf.Root.get("/Perms")
    if isinstance(perms, pikepdf.Dictionary) and isinstance(perms.get("/DocMDP"), pikepdf.Dictionary):
        candidates.append(perms.get("/DocMDP"))
    for field in _signature_fields(pdf):
        value = field.get("/V")
        if isinstance(value, pikepdf.Dictionary):
            candidates.append(value)
    for signature in candidates:
        references = signature.get("/Reference")
        if not isinstance(references, pikepdf.Array):
            continue
        for reference in references:
            if not isinstance(reference, pikepdf.Dictionary):
                continue
            if reference.get("/TransformMethod") != pikepdf.Name.DocMDP:
                continue
            params = reference.get("/TransformParams")
            level = params.get("/P", 2) if isinstance(params, pikepdf.Dictionary) else 2
            try:
                return int(level)
            except (TypeError, ValueError):
                return 2
    return None


def _signature_fields(pdf: pikepdf.Pdf, max_depth: int = _MAX_FIELD_DEPTH) -> list[pikepdf.Dictionary]:
    """Every terminal form field of type /Sig (the type is inheritable), cycles and deep trees guarded."""
    acroform = pdf.Root.get("/AcroForm")
    if not isinstance(acroform, pikepdf.Dictionary):
        return []
    fields = acroform.get("/Fields")
    if not isinstance(fields, pikepdf.Array):
        return []
    found: list[pikepdf.Dictionary] = []
    seen: set[tuple[int, int]] = set()

    def walk(items: pikepdf.Array, inherited_ft: Any, depth: int) -> None:
        if depth > max_depth:
            return
        for item in items:
            if not isinstance(item, pikepdf.Dictionary):
                continue
            if item.is_indirect:
                if item.objgen in seen:
                    continue
                seen.add(item.objgen)
            ft = item.get("/FT", inherited_ft)
            kids = item.get("/Kids")
            if isinstance(kids, pikepdf.Array) and any(
                    isinstance(k, pikepdf.Dictionary) and "/T" in k for k in kids):
                walk(kids, ft, depth + 1)
            elif ft == pikepdf.Name.Sig:
                found.append(item)

    walk(fields, None, 0)
    return found


def announced_objects(path: Path) -> int | None:
    """The object count the file announces (``/Size`` of its last trailer or cross-reference stream), read from
    the end of the file without parsing it; None when not found (qpdf will reconstruct, in the sandbox)."""
    with open(path, "rb") as fh:
        return _announced_objects(fh)


def _announced_objects(fh: BinaryIO) -> int | None:
    """:func:`announced_objects` on an open file (its position is left anywhere)."""
    size = fh.seek(0, os.SEEK_END)
    fh.seek(max(0, size - _TAIL_WINDOW))
    tail = fh.read(_TAIL_WINDOW)
    found = [int(m.group(1)) for m in _SIZE.finditer(tail)]
    xrefs = list(_STARTXREF.finditer(tail))
    if xrefs:
        offset = int(xrefs[-1].group(1))
        if 0 <= offset < size:
            fh.seek(offset)
            head = fh.read(_TAIL_WINDOW)
            if not head.lstrip().startswith(b"xref"):  # a cross-reference stream: /Size is in its dictionary
                found += [int(m.group(1)) for m in _SIZE.finditer(head[: head.find(b"stream") + 1 or None])]
    return max(found) if found else None


def _too_complex(reason: str, detail: str) -> ParafeError:
    return ParafeError(E.PDF_TOO_COMPLEX, reason=reason, detail=detail)


def _count_pages(pdf: pikepdf.Pdf, limits: PdfLimits) -> int:
    """Walk the page tree (iteratively, each node once) within the limits; returns the number of leaves."""
    root = pdf.Root.get("/Pages")
    if not isinstance(root, pikepdf.Dictionary):
        raise ParafeError(E.PDF_INVALID, detail="no page tree")
    declared = root.get("/Count")
    if isinstance(declared, int) and declared > limits.max_pages:
        raise _too_complex(f"{declared} pages, au plus {limits.max_pages}", "page count over the limit")
    pages = 0
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[pikepdf.Object, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_depth:
            raise _too_complex(f"arborescence des pages trop profonde, au plus {limits.max_depth} niveaux",
                               "page tree too deep")
        if node.is_indirect:
            if node.objgen in seen:
                continue
            seen.add(node.objgen)
        kids = node.get("/Kids") if isinstance(node, pikepdf.Dictionary) else None
        if isinstance(kids, pikepdf.Array):
            if len(kids) > limits.max_pages:
                raise _too_complex(f"plus de {limits.max_pages} pages", "page tree node over the page limit")
            stack.extend((kid, depth + 1) for kid in kids if isinstance(kid, pikepdf.Dictionary))
        else:
            pages += 1
            if pages > limits.max_pages:
                raise _too_complex(f"plus de {limits.max_pages} pages", "page count over the limit")
    return pages


def _check_with_signer_reader(path: Path, warnings: list[str]) -> None:
    """qpdf had to repair the file: it must still open in pyHanko (the signer), or it is refused now."""
    from pyhanko.pdf_utils.misc import PdfReadError
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        with open(path, "rb") as fh:
            reader = PdfFileReader(fh, strict=False)
            pages = reader.root["/Pages"]
            int(pages["/Count"])
    except (PdfReadError, KeyError, TypeError, ValueError, IndexError, AttributeError, OSError) as exc:
        raise ParafeError(E.PDF_INVALID, detail=f"damaged PDF ({'; '.join(warnings)[:300]}): {exc}") from None


def _near_memory_limit() -> bool:
    """Whether this process came within 10 % of its address-space limit (in the sandbox's child)."""
    import resource

    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return False
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            peak = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmPeak:"))
    except (OSError, StopIteration, ValueError):
        return False
    return peak >= limit * 0.9


def inspect_here(path: Path, limits: PdfLimits) -> PdfInfo:
    """:func:`inspect_pdf` in the current process (runs in the sandbox's child; never call it on an untrusted
    file in a server process)."""
    try:
        # without pushing inherited attributes down to every page: that walks the whole page tree at open
        # (measured: 1.8 KB and 40 µs per page) before the page limit could be checked
        pdf = pikepdf.open(path, inherit_page_attributes=False)
    except pikepdf.PasswordError:
        return PdfInfo(pages=0, encrypted=True, protected=True, reason="a password is required to open it",
                       docmdp=None, signature_count=0)
    except (pikepdf.PdfError, ValueError, RuntimeError) as exc:
        if _near_memory_limit():  # qpdf reports a failed allocation as a damaged file
            raise _too_complex("mémoire de lecture dépassée", f"memory limit reached: {exc}") from None
        raise ParafeError(E.PDF_INVALID, detail=f"unreadable PDF: {exc}") from None
    with pdf:
        try:
            size = pdf.trailer.get("/Size")
            if isinstance(size, int) and size > limits.max_objects:
                raise _too_complex(f"{size} objets, au plus {limits.max_objects}", "object count over the limit")
            warnings = [str(w) for w in pdf.get_warnings()]
            if any(word in w for w in warnings for word in _DAMAGE_WORDS):
                _check_with_signer_reader(path, warnings)
            walked = _count_pages(pdf, limits)
            pages = len(pdf.pages) if walked else 0
            encrypted = bool(pdf.is_encrypted)
            allow = pdf.allow
            can_sign = bool(allow.modify_form or allow.modify_annotation)
            docmdp = _docmdp(pdf)
            signature_count = sum(1 for f in _signature_fields(pdf, limits.max_depth)
                                  if isinstance(f.get("/V"), pikepdf.Dictionary))
        except (pikepdf.PdfError, ValueError, RuntimeError, TypeError) as exc:
            if _near_memory_limit():
                raise _too_complex("mémoire de lecture dépassée", f"memory limit reached: {exc}") from None
            raise ParafeError(E.PDF_INVALID, detail=f"unreadable PDF structure: {exc}") from None
    if pages == 0:
        raise ParafeError(E.PDF_INVALID, detail="the PDF has no page")
    reason: str | None = None
    if encrypted and not can_sign:
        reason = "encrypted without the right to fill forms or to annotate"
    elif docmdp == 1:
        reason = "certified with DocMDP P=1 (no changes allowed)"
    return PdfInfo(pages=pages, encrypted=encrypted, protected=reason is not None, reason=reason, docmdp=docmdp,
                   signature_count=signature_count)


def inspect_pdf(path: Path, limits: PdfLimits | None = None) -> PdfInfo:
    """Open ``path`` as a PDF and describe it. Raises ``EMPTY_FILE`` and ``PDF_INVALID`` (not a PDF, unreadable,
    damaged beyond what the signer reads, no page) and ``PDF_TOO_COMPLEX`` (a limit passed). A PDF that needs a
    password is not an error here: it is reported as protected. The parsing runs in a bounded child process."""
    from parafe.formats import sandbox

    limits = limits or PdfLimits()
    with open(path, "rb") as fh:  # one open for the header and the announced size (issue 17)
        head = fh.read(_HEADER_WINDOW)
        if not head:
            raise ParafeError(E.EMPTY_FILE, detail="PDF file is empty")
        if b"%PDF-" not in head:
            raise ParafeError(E.PDF_INVALID, detail="no %PDF- header in the first 1024 bytes")
        announced = _announced_objects(fh)
    if announced is not None and announced > limits.max_objects:
        raise _too_complex(f"{announced} objets, au plus {limits.max_objects}", "announced object count over the limit")
    try:
        info: PdfInfo = sandbox.run(inspect_here, path, limits, memory_mb=limits.memory_mb,
                                    cpu_seconds=limits.cpu_seconds)
    except sandbox.SandboxExceeded as exc:
        raise _too_complex("mémoire ou temps de lecture dépassé", str(exc)) from None
    return info


def ensure_signable(path: Path, limits: PdfLimits | None = None) -> PdfInfo:
    """:func:`inspect_pdf`, then ``PDF_PROTECTED`` (« Fichier refusé : PDF protégé en écriture. ») when the PDF
    is write-protected by the measured rule."""
    info = inspect_pdf(path, limits)
    if info.protected:
        raise ParafeError(E.PDF_PROTECTED, detail=info.reason)
    return info
