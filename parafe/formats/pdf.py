"""PDF inspection for deposits: is it a PDF, how many pages, is it write-protected (stack-notes §4).

The measured rule: a PDF is protected when a password is needed to open it, or when it is encrypted without
the right to fill forms or to annotate (a signature adds a form field and its widget annotation), or when a
certification signature forbids all changes (DocMDP P=1). DocMDP P=2 and P=3 still allow signing.
pyHanko signs encrypted "no modification" files anyway, so this policy is ours to apply before signing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pikepdf

from parafe.domain.errors import E, ParafeError

# Readers accept the header anywhere in the first 1024 bytes (ISO 32000-1 implementation note 13).
_HEADER_WINDOW = 1024
_MAX_FIELD_DEPTH = 32


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


def _signature_fields(pdf: pikepdf.Pdf) -> list[pikepdf.Dictionary]:
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
        if depth > _MAX_FIELD_DEPTH:
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


def inspect_pdf(path: Path) -> PdfInfo:
    """Open ``path`` as a PDF and describe it. Raises ``EMPTY_FILE`` and ``PDF_INVALID`` (not a PDF, unreadable,
    no page). A PDF that needs a password is not an error here: it is reported as protected."""
    with open(path, "rb") as fh:
        head = fh.read(_HEADER_WINDOW)
    if not head:
        raise ParafeError(E.EMPTY_FILE, detail="PDF file is empty")
    if b"%PDF-" not in head:
        raise ParafeError(E.PDF_INVALID, detail="no %PDF- header in the first 1024 bytes")
    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError:
        return PdfInfo(pages=0, encrypted=True, protected=True, reason="a password is required to open it",
                       docmdp=None, signature_count=0)
    except (pikepdf.PdfError, ValueError, RuntimeError) as exc:
        raise ParafeError(E.PDF_INVALID, detail=f"unreadable PDF: {exc}") from None
    with pdf:
        try:
            pages = len(pdf.pages)
            encrypted = bool(pdf.is_encrypted)
            allow = pdf.allow
            can_sign = bool(allow.modify_form or allow.modify_annotation)
            docmdp = _docmdp(pdf)
            signature_count = sum(1 for f in _signature_fields(pdf) if isinstance(f.get("/V"), pikepdf.Dictionary))
        except (pikepdf.PdfError, ValueError, RuntimeError, TypeError) as exc:
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


def ensure_signable(path: Path) -> PdfInfo:
    """:func:`inspect_pdf`, then ``PDF_PROTECTED`` (« Fichier refusé : PDF protégé en écriture. ») when the PDF
    is write-protected by the measured rule."""
    info = inspect_pdf(path)
    if info.protected:
        raise ParafeError(E.PDF_PROTECTED, detail=info.reason)
    return info
