"""Passkey-confirmed server-held signing keys (issue 20).

Revision ID: 0015_passkeys
Revises: 0014_compliance
Create Date: 2026-12-07 00:00:00

"""
from typing import Sequence, Union

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


# revision identifiers, used by Alembic.
revision: str = '0015_passkeys'
down_revision: Union[str, Sequence[str], None] = '0014_compliance'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
