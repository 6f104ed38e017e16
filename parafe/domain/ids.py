"""Document identifiers as callers send them (DECISIONS D1): one id, or a list of ids for batch URLs.

Issue 19: the id check was written twice (rights.visible_document, oss.access.parse_id) and the list parsing
with its ``MAX_IDS`` twice (OSS ``generateSAUrl``/``generateSMSUrl`` ``ids``, the OTP URL of several documents).
Where they differed, the decision:

- an id that is not a decimal number in 1..2**62 answers like an unknown document (D1: no existence oracle);
- a list is split on ``,``, ``;`` and white space, and may come wrapped in ``[ ]`` (the OSS spec's example has
  spaces; be liberal in what we accept, D0); the OTP copy split on ``,`` only;
- every id of a list is checked at once (the OTP copy left malformed ids to the look-up), duplicates are
  dropped keeping the first, and more than :data:`MAX_IDS` *distinct* ids are refused (the OSS copy counted
  repeats: a list repeating one id names one document).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from parafe.domain.errors import E, ErrorDef, ParafeError

MAX_IDS = 100  # documents in one batch URL
MAX_ID = 2**62

_SEPARATORS = re.compile(r"[,;\s]+")


def parse_id(value: int | str, not_found: ErrorDef = E.DOCUMENT_NOT_FOUND) -> int:
    """A document id as an int; ``not_found`` when it is not a decimal number in 1..2**62."""
    try:
        doc_id = int(str(value).strip())
    except ValueError:
        raise ParafeError(not_found, detail="document id is not a number") from None
    if doc_id <= 0 or doc_id > MAX_ID:
        raise ParafeError(not_found)
    return doc_id


def parse_ids(values: Iterable[int | str] | str | None, *, name: str = "ids") -> list[int]:
    """The distinct ids of a list parameter ``name`` (repeated fields and/or separated values), in order.

    ``BAD_REQUEST`` when there is none or more than :data:`MAX_IDS`; ``DOCUMENT_NOT_FOUND`` for a malformed id.
    """
    raw = [values] if isinstance(values, str | int) else list(values or [])
    out: list[int] = []
    for value in raw:
        for part in _SEPARATORS.split(str(value).strip().strip("[]")):
            if part:
                out.append(parse_id(part))
    ids = list(dict.fromkeys(out))
    if not ids:
        raise ParafeError(E.BAD_REQUEST, reason=f"au moins un identifiant de document « {name} » est obligatoire")
    if len(ids) > MAX_IDS:
        raise ParafeError(E.BAD_REQUEST, reason=f"au plus {MAX_IDS} identifiants de document « {name} »")
    return ids
