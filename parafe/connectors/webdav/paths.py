"""Checks on the raw request path of the WebDAV connector, before anything else sees it.

The ASGI server decodes ``%2F`` into ``/`` and replaces bytes that are not UTF-8 by U+FFFD, so the checks run on
``scope["raw_path"]``: ``..`` and ``.`` segments (plain or percent-encoded), encoded slashes and backslashes
(``%2F``, ``%5C``, ``\\`` — a way to smuggle an absolute or parent path), control characters, and names that are
not UTF-8 (spec §4.5: names "doivent impérativement être en UTF-8"). The last segment of a PUT that is not UTF-8
is handed to the deposit service as bytes, which refuses it with its own error (and the depositor's mail).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from parafe.domain.errors import E, ParafeError

_ENCODED_SEPARATORS = (b"%2f", b"%5c")


@dataclass(frozen=True)
class CheckedPath:
    raw_last_segment: bytes | None  # the undecodable last segment of a PUT, else None


def check_raw_path(raw_path: bytes, method: str) -> CheckedPath:
    """Refuse traversal, encoded separators, control characters and non-UTF-8 names (see module doc)."""
    lowered = raw_path.lower()
    if any(sep in lowered for sep in _ENCODED_SEPARATORS) or b"\\" in raw_path:
        raise ParafeError(E.BAD_REQUEST, reason="chemin refusé (séparateur encodé ou barre oblique inverse)")
    if not raw_path.startswith(b"/"):
        raise ParafeError(E.BAD_REQUEST, reason="chemin refusé (chemin non absolu)")
    segments = raw_path.split(b"/")
    last = len(segments) - 1
    raw_last: bytes | None = None
    for index, segment in enumerate(segments):
        decoded = unquote_to_bytes(segment)
        if decoded in (b".", b".."):
            raise ParafeError(E.BAD_REQUEST, reason="chemin refusé (segment « . » ou « .. »)")
        if any(b < 0x20 or b == 0x7F for b in decoded):
            raise ParafeError(E.BAD_CHARACTERS, detail="control character in the path")
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            if index == last and method == "PUT":
                raw_last = decoded
                continue
            raise ParafeError(E.BAD_CHARACTERS, detail="path segment is not valid UTF-8") from None
    return CheckedPath(raw_last_segment=raw_last)
