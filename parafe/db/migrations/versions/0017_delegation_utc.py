"""Delegation periods stored before 2026-12-08 on SQLite: from Paris wall-clock times to UTC instants.

Until then, the period's bounds (Paris midnights) were bound as Paris-aware datetimes, and SQLite keeps a
datetime's wall-clock time without its offset (read back as UTC, D16): a delegation started and ended one or two
hours late. A bound is always a Paris midnight, which as a UTC instant is 22:00 or 23:00; a stored 00:00:00 can
only be such a wall-clock time, and is converted. PostgreSQL (``timestamptz``) stored the instants: nothing to do.

Revision ID: 0017_delegation_utc
Revises: 0016_delegation
Create Date: 2026-12-08 00:00:00

"""
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0017_delegation_utc'
down_revision: str | Sequence[str] | None = '0016_delegation'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PARIS = ZoneInfo("Europe/Paris")
_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's SQLite DATETIME storage format


def _as_utc(stored: str) -> str | None:
    """The UTC form of a bound stored as a Paris wall-clock midnight; None when it is already an instant."""
    moment = datetime.fromisoformat(stored)
    if (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0):
        return None
    return moment.replace(tzinfo=_PARIS).astimezone(UTC).replace(tzinfo=None).strftime(_FORMAT)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    rows = bind.execute(sa.text("SELECT id, starts_at, ends_at FROM delegations")).all()
    for row_id, starts_at, ends_at in rows:
        starts, ends = _as_utc(str(starts_at)), _as_utc(str(ends_at))
        if starts is None and ends is None:
            continue
        bind.execute(sa.text("UPDATE delegations SET starts_at = :s, ends_at = :e WHERE id = :id"),
                     {"s": starts or starts_at, "e": ends or ends_at, "id": row_id})


def downgrade() -> None:
    pass  # the old form was wrong; nothing to restore
