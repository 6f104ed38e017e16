"""Definitive delete tombstones, per-client download marks, recipients' capability links (issue 15).

Revision ID: 0008_deletion_links
Revises: 0007_search_indexes
Create Date: 2026-12-07 00:00:00

"""
from typing import Sequence, Union

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


# revision identifiers, used by Alembic.
revision: str = '0008_deletion_links'
down_revision: Union[str, Sequence[str], None] = '0007_search_indexes'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
