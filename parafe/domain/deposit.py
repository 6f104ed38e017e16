"""Pure deposit rules: file names, extensions, labels (API-REFERENCE §1.7-§1.9, DECISIONS D3 and D5).

No I/O here: the deposit service calls these on every connector's input before anything is stored.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime

from parafe.domain.errors import E, ParafeError
from parafe.domain.paris_time import FORMAT_LABEL, paris_today

# API-REFERENCE §1.8, verbatim and in the document's order (62 entries; a test compares with the spec).
ANNEX_EXTENSIONS: tuple[str, ...] = (
    "xml", "xhl", "pdf", "txt", "jpeg", "jpg", "gif", "png", "bmp", "html", "rtf", "tif", "tiff", "doc", "docx",
    "xls", "xlsx", "odt", "ods", "ots", "zip", "bin", "cry", "csv", "exe", "bat", "pli", "crypt", "temp", "kle",
    "sig", "cmp", "p7m", "rep", "thmx", "pde", "pdp", "p7s", "db", "htm", "tmp", "ini", "pptx", "pff", "sh1",
    "cle", "ppt", "css", "js", "msg", "emz", "trc", "pdr", "pps", "dat", "rst", "kfl", "ret", "p7b", "mdi",
    "docm", "xlk",
)
_ANNEX_SET = frozenset(ANNEX_EXTENSIONS)

# D3: web services (SOAP, REST, OSS) and WebDAV name limits, in characters after NFC normalisation.
NAME_LIMIT_WS = 150
NAME_LIMIT_WEBDAV = 200
LABEL_LIMIT = 255

# Bidirectional overrides/isolates let a name display differently from what it is ("facture\u202efdp.exe"
# shows as "facture.pdf"...); they are format characters (Cf), refused alongside the control characters.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _bad_char(text: str) -> str | None:
    """The first forbidden character of ``text`` (``/``, ``\\``, control, surrogate, bidi control), or None."""
    for ch in text:
        if ch in "/\\" or ch in _BIDI_CONTROLS:
            return ch
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs"):  # Cc covers NUL, C0, DEL and C1; Cs = lone surrogates
            return ch
    return None


def normalise_name(raw: str | bytes, limit: int) -> str:
    """A deposited file name, NFC-normalised and checked (D3).

    Bytes must be UTF-8. Raises ``BAD_CHARACTERS`` (undecodable, ``/``, ``\\``, NUL or any control character,
    bidi controls, ``.`` / ``..``), ``NAME_MISSING`` (empty or blank) and ``NAME_TOO_LONG`` (more than
    ``limit`` characters after normalisation).
    """
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParafeError(E.BAD_CHARACTERS, detail=f"file name is not valid UTF-8: {exc.reason}") from exc
    else:
        text = raw
    name = unicodedata.normalize("NFC", text)
    if not name.strip():
        raise ParafeError(E.NAME_MISSING, detail="empty file name")
    bad = _bad_char(name)
    if bad is not None:
        raise ParafeError(E.BAD_CHARACTERS, detail=f"file name contains forbidden character U+{ord(bad):04X}")
    if name in (".", ".."):
        raise ParafeError(E.BAD_CHARACTERS, detail=f"file name {name!r} is not allowed")
    if len(name) > limit:
        raise ParafeError(E.NAME_TOO_LONG, detail=f"{len(name)} characters > {limit}", limit=limit)
    return name


def extension_of(name: str) -> str:
    """The extension of ``name``, lower-case and without the dot; ``""`` when there is none.

    A leading dot alone (``.bashrc``) is not an extension, as in :func:`os.path.splitext`.
    """
    base, dot, ext = name.rpartition(".")
    if not dot or not base.strip("."):
        return ""
    return ext.lower()


def is_annex_extension_allowed(name: str) -> bool:
    """Whether ``name``'s extension is in the §1.8 allow-list (case-insensitive)."""
    return extension_of(name) in _ANNEX_SET


def check_annex_name(name: str) -> None:
    """Raise ``EXTENSION_NOT_ALLOWED`` unless ``name``'s extension is in the §1.8 allow-list."""
    if not is_annex_extension_allowed(name):
        ext = extension_of(name) or "(none)"
        raise ParafeError(E.EXTENSION_NOT_ALLOWED, detail=f"extension {ext!r} of {name!r} is not allowed")


def check_label(label: str | None) -> str | None:
    """A deposit label, stripped and NFC-normalised; None when absent or blank (the caller then uses
    :func:`default_label`). Raises ``BAD_CHARACTERS`` and ``LABEL_TOO_LONG`` (more than 255 characters)."""
    if label is None:
        return None
    text = unicodedata.normalize("NFC", label.strip())
    if not text:
        return None
    bad = _bad_char(text)
    if bad is not None:
        raise ParafeError(E.BAD_CHARACTERS, detail=f"label contains forbidden character U+{ord(bad):04X}")
    if len(text) > LABEL_LIMIT:
        raise ParafeError(E.LABEL_TOO_LONG, detail=f"{len(text)} characters > {LABEL_LIMIT}")
    return text


def default_label(now: datetime | None = None) -> str:
    """Today's date in Europe/Paris as ``AAAA-MM-JJ`` (D5). A naive ``now`` is taken as UTC (D16)."""
    return paris_today(now).strftime(FORMAT_LABEL)
