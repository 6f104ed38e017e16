"""SMS deliveries through real providers (issue 16): one row per SMS handed to the provider.

Revision ID: 0009_sms_deliveries
Revises: 0008_deletion_links
Create Date: 2026-12-07 00:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0009_sms_deliveries'
down_revision: Union[str, Sequence[str], None] = '0008_deletion_links'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('sms_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=True),
    sa.Column('circuit_id', sa.Integer(), nullable=True),
    sa.Column('challenge_id', sa.Integer(), nullable=True),
    sa.Column('document_ids', sa.JSON(), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=32), nullable=False),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('encoding', sa.String(length=8), nullable=False),
    sa.Column('message_length', sa.Integer(), nullable=False),
    sa.Column('segments', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('provider_id', sa.String(length=128), nullable=True),
    sa.Column('provider_status', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'],
                            name=op.f('fk_sms_deliveries_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['circuit_id'], ['circuits.id'],
                            name=op.f('fk_sms_deliveries_circuit_id_circuits'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['challenge_id'], ['otp_challenges.id'],
                            name=op.f('fk_sms_deliveries_challenge_id_otp_challenges'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_deliveries'))
    )
    with op.batch_alter_table('sms_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sms_deliveries_subscriber_id'), ['subscriber_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sms_deliveries_challenge_id'), ['challenge_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sms_deliveries_provider_id'), ['provider_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sms_deliveries_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sms_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sms_deliveries_created_at'))
        batch_op.drop_index(batch_op.f('ix_sms_deliveries_provider_id'))
        batch_op.drop_index(batch_op.f('ix_sms_deliveries_challenge_id'))
        batch_op.drop_index(batch_op.f('ix_sms_deliveries_subscriber_id'))
    op.drop_table('sms_deliveries')
