"""OTP links (REST / SOAP OTP URL creation, DECISIONS D15).

Revision ID: 0003_rest
Revises: 0001
Create Date: 2026-11-28 00:20:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003_rest'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('otp_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('document_ids', sa.JSON(), nullable=False),
    sa.Column('signer_index', sa.Integer(), nullable=False),
    sa.Column('signer_email', sa.String(length=255), nullable=True),
    sa.Column('signer_phone', sa.String(length=64), nullable=True),
    sa.Column('referer', sa.String(length=1024), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_otp_links_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_otp_links_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_otp_links')),
    sa.UniqueConstraint('token', name=op.f('uq_otp_links_token'))
    )
    with op.batch_alter_table('otp_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_otp_links_subscriber_id'), ['subscriber_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('otp_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_otp_links_subscriber_id'))
    op.drop_table('otp_links')
