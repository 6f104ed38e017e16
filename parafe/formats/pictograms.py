"""The ``pictograms`` XML some clients send with a deposit (Maarch: root ``<pictogrammes>``, research note §4).

Kept as given (it says where visa and signature pictograms go); only checked to be small, well-formed XML
without DTD or entities.
"""

from __future__ import annotations

from parafe.domain.errors import E, ParafeError
from parafe.formats.safexml import parse_untrusted

PICTOGRAMS_LIMIT = 256 * 1024


def check_pictograms(data: bytes | None) -> str | None:
    """The pictograms XML as text, or None when absent; refuses oversized or unsafe XML."""
    if not data or not data.strip():
        return None
    if len(data) > PICTOGRAMS_LIMIT:
        raise ParafeError(E.BAD_REQUEST, reason="fichier « pictograms » trop volumineux")
    parse_untrusted(data)
    return data.decode("utf-8", "replace")
