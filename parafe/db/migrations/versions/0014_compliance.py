"""Compliance report per client certificate and sandbox subscribers (issue 21).

Revision ID: 0014_compliance
Revises: 0013_pictograms
Create Date: 2026-12-07 04:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0014_compliance'
down_revision: str | Sequence[str] | None = '0013_pictograms'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('compliance_clients',
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=1024), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('fingerprint', name=op.f('pk_compliance_clients'))
    )
    op.create_table('compliance_counters',
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('min_gap', sa.Float(), nullable=True),
    sa.Column('last_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('fingerprint', 'hour', 'kind', name=op.f('pk_compliance_counters'))
    )
    op.create_table('compliance_examples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.String(length=512), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compliance_examples'))
    )
    op.create_index('ix_compliance_examples_rule', 'compliance_examples', ['fingerprint', 'rule', 'at'])
    op.create_table('compliance_pending',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compliance_pending')),
    sa.UniqueConstraint('fingerprint', 'kind', 'key', name=op.f('uq_compliance_pending_fingerprint'))
    )
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sandbox', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('sandbox')
    op.drop_table('compliance_pending')
    op.drop_index('ix_compliance_examples_rule', table_name='compliance_examples')
    op.drop_table('compliance_examples')
    op.drop_table('compliance_counters')
    op.drop_table('compliance_clients')
