"""Absence delegation and daily digest preferences (issue 20).

Revision ID: 0016_delegation
Revises: 0015_passkeys
Create Date: 2026-12-07 00:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0016_delegation'
down_revision: str | Sequence[str] | None = '0015_passkeys'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('delegations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delegator_id', sa.Integer(), nullable=False),
    sa.Column('delegate_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['delegator_id'], ['users.id'], name=op.f('fk_delegations_delegator_id_users'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['delegate_id'], ['users.id'], name=op.f('fk_delegations_delegate_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delegations'))
    )
    op.create_index(op.f('ix_delegations_delegator_id'), 'delegations', ['delegator_id'], unique=False)
    op.create_index(op.f('ix_delegations_delegate_id'), 'delegations', ['delegate_id'], unique=False)
    op.add_column('users', sa.Column('digest_mail', sa.Boolean(), server_default=sa.true(), nullable=False))
    op.add_column('users', sa.Column('digest_sent_on', sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('digest_sent_on')
        batch.drop_column('digest_mail')
    op.drop_index(op.f('ix_delegations_delegate_id'), table_name='delegations')
    op.drop_index(op.f('ix_delegations_delegator_id'), table_name='delegations')
    op.drop_table('delegations')
