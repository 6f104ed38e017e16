"""SMS deliveries through real providers (issue 16).

Revision ID: 0009_sms_deliveries
Revises: 0008_deletion_links
Create Date: 2026-12-07 00:00:00

"""
from typing import Sequence, Union

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


# revision identifiers, used by Alembic.
revision: str = '0009_sms_deliveries'
down_revision: Union[str, Sequence[str], None] = '0008_deletion_links'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
