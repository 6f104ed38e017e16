"""Workflow engine: OTP challenges and the development outbox of mails and SMS.

Revision ID: 0004_workflow
Revises: 0003_rest
Create Date: 2026-11-28 01:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0004_workflow'
down_revision: Union[str, Sequence[str], None] = '0003_rest'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('otp_challenges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('circuit_id', sa.Integer(), nullable=True),
    sa.Column('document_ids', sa.JSON(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('destination', sa.String(length=255), nullable=False),
    sa.Column('code_hash', sa.String(length=128), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['circuit_id'], ['circuits.id'], name=op.f('fk_otp_challenges_circuit_id_circuits'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_otp_challenges_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_otp_challenges'))
    )
    with op.batch_alter_table('otp_challenges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_otp_challenges_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_otp_challenges_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('dev_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('recipient', sa.String(length=1024), nullable=False),
    sa.Column('subject', sa.String(length=1024), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('document_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dev_messages'))
    )
    with op.batch_alter_table('dev_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dev_messages_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_dev_messages_document_id'), ['document_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dev_messages_recipient'), ['recipient'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dev_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dev_messages_recipient'))
        batch_op.drop_index(batch_op.f('ix_dev_messages_document_id'))
        batch_op.drop_index(batch_op.f('ix_dev_messages_created_at'))
    op.drop_table('dev_messages')
    with op.batch_alter_table('otp_challenges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_otp_challenges_subscriber_id'))
        batch_op.drop_index(batch_op.f('ix_otp_challenges_created_at'))
    op.drop_table('otp_challenges')
