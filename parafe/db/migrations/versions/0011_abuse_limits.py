"""Abuse limits: OTP codes per document, login throttling, document error state (issue 18).

Revision ID: 0011_abuse_limits
Revises: 0010_s2low
Create Date: 2026-12-07 00:00:00

"""
from typing import Sequence, Union

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


# revision identifiers, used by Alembic.
revision: str = '0011_abuse_limits'
down_revision: Union[str, Sequence[str], None] = '0010_s2low'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
