"""Signature verification reports (issue 15).

Revision ID: 0012_verification
Revises: 0011_abuse_limits
Create Date: 2026-12-07 00:00:00

"""
from typing import Sequence, Union

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


# revision identifiers, used by Alembic.
revision: str = '0012_verification'
down_revision: Union[str, Sequence[str], None] = '0011_abuse_limits'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
