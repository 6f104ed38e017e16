"""Europe/Paris time, the one place that converts and formats it (DECISIONS D16: store UTC, show Paris time).

Issue 19: three formatting helpers (mails, portal, PDF stamp) and a fourth in downloads each held their own
``ZoneInfo("Europe/Paris")`` and their own idea of a naive datetime. Decision: a naive datetime is UTC (SQLite
gives stored UTC values back naive; D16), never the machine's local time (the stamp's helper took it as local
time, so a naive value was shifted by the server's time zone). The formats stay those each place shows:
``FORMAT_MAIL`` (mails, FdC), ``FORMAT_PORTAL`` (portal), ``FORMAT_SECONDS`` (signed-file listings) and
:func:`stamp_text` (the signature pictogram).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")

FORMAT_MAIL = "%d/%m/%Y à %H:%M"
FORMAT_PORTAL = "%d/%m/%Y %H:%M"
FORMAT_SECONDS = "%d/%m/%Y %H:%M:%S"
FORMAT_DAY = "%d/%m/%Y"
FORMAT_LABEL = "%Y-%m-%d"  # default label, D5


def aware(moment: datetime) -> datetime:
    """A stored time as an aware datetime; a naive one is UTC (D16)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def to_paris(moment: datetime) -> datetime:
    """``moment`` in Europe/Paris time (a naive ``moment`` is UTC)."""
    return aware(moment).astimezone(PARIS)


def paris_format(moment: datetime, fmt: str = FORMAT_MAIL) -> str:
    """``moment`` shown in Europe/Paris time with the ``strftime`` format ``fmt``."""
    return to_paris(moment).strftime(fmt)


def paris_today(now: datetime | None = None) -> date:
    """Today's date in Europe/Paris (``now`` defaults to the current time)."""
    return to_paris(now if now is not None else datetime.now(UTC)).date()


def stamp_text(moment: datetime) -> str:
    """``le 27/11/2026 à 23:53``: the date line of a signature pictogram."""
    return "le " + paris_format(moment)
