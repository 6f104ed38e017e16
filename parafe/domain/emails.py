"""The one e-mail address check of Parafe (issue 19: it had six differing copies).

An address is ``local@domain.tld``: one ``@``, a dot in the domain part, at most 254 characters, and none of
these characters anywhere:

- white space and control characters (U+0000-U+001F, U+007F): they break mail headers and log lines;
- ``,`` and ``;``: the spec's list separators (``emailDestinataire``, ``agents``, ``email_CC``: "séparés par une
  virgule ou un point-virgule", API-REFERENCE §2.6.2), so an address can never hold one;
- ``<``, ``>`` and ``"``: the syntax of a display name (``"Nom" <a@b.fr>``), which we never accept as an address.

Where the copies differed, the decision:

- the whole value must match (the old ``^…$`` with ``re.match`` let a trailing newline through);
- control characters are refused everywhere (three copies let them through);
- ``'`` is accepted (one copy refused it, but ``jean.o'neil@…`` is a valid, deliverable address);
- the limit is 254 characters, RFC 5321's (the 256-character path minus its angle brackets); the copies said
  254, 255 or nothing.

Normalising (``strip``, ``lower``) stays with the callers: some keep the case the client sent.
"""

from __future__ import annotations

import re

EMAIL_MAX_LENGTH = 254

_PART = r"[^@\s,;<>\"\x00-\x1f\x7f]+"
_EMAIL = re.compile(rf"{_PART}@{_PART}\.{_PART}")


def is_email(value: str) -> bool:
    """True when ``value`` (taken as it is, not stripped) is an acceptable e-mail address."""
    return len(value) <= EMAIL_MAX_LENGTH and _EMAIL.fullmatch(value) is not None
