"""Helios through S2LOW: per-subscriber accounts, transactions, PES_Retour (issue 16).

Revision ID: 0010_s2low
Revises: 0009_sms_deliveries
Create Date: 2026-12-07 00:00:00

"""
from typing import Sequence, Union

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


# revision identifiers, used by Alembic.
revision: str = '0010_s2low'
down_revision: Union[str, Sequence[str], None] = '0009_sms_deliveries'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
