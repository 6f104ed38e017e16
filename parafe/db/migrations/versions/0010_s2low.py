"""Helios through S2LOW: per-subscriber accounts, transactions, PES_Retour (issue 16).

Revision ID: 0010_s2low
Revises: 0009_sms_deliveries
Create Date: 2026-12-07 00:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0010_s2low'
down_revision: Union[str, Sequence[str], None] = '0009_sms_deliveries'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('s2low_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=1024), nullable=False),
    sa.Column('cert_pem', sa.Text(), nullable=False),
    sa.Column('key_pem', sa.Text(), nullable=False),
    sa.Column('ca_pem', sa.Text(), nullable=True),
    sa.Column('login', sa.String(length=255), nullable=True),
    sa.Column('password', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retours_polled_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'],
                            name=op.f('fk_s2low_accounts_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_s2low_accounts')),
    sa.UniqueConstraint('subscriber_id', name=op.f('uq_s2low_accounts_subscriber_id'))
    )
    op.create_table('s2low_transactions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('document_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('sha1', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('transaction_id', sa.String(length=32), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'],
                            name=op.f('fk_s2low_transactions_document_id_documents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_s2low_transactions')),
    sa.UniqueConstraint('key', name=op.f('uq_s2low_transactions_key'))
    )
    with op.batch_alter_table('s2low_transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_s2low_transactions_document_id'), ['document_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_s2low_transactions_sha1'), ['sha1'], unique=False)
    op.create_table('s2low_retours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('retour_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('return_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['return_id'], ['returns.id'],
                            name=op.f('fk_s2low_retours_return_id_returns'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_s2low_retours')),
    sa.UniqueConstraint('account', 'retour_id', name='uq_s2low_retours_account_retour')
    )


def downgrade() -> None:
    op.drop_table('s2low_retours')
    with op.batch_alter_table('s2low_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_s2low_transactions_sha1'))
        batch_op.drop_index(batch_op.f('ix_s2low_transactions_document_id'))
    op.drop_table('s2low_transactions')
    op.drop_table('s2low_accounts')
