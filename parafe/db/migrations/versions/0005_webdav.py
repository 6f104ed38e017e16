"""WebDAV connector: receipts of accepted deposits and the placement / hiding of their returns in out/.

Revision ID: 0005_webdav
Revises: 0004_workflow
Create Date: 2026-11-28 02:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0005_webdav'
down_revision: Union[str, Sequence[str], None] = '0004_workflow'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('webdav_deposits',
    sa.Column('document_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('circuit_id', sa.Integer(), nullable=False),
    sa.Column('label_folder', sa.String(length=255), nullable=False),
    sa.Column('put_name', sa.String(length=255), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('receipt_hidden_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('signed_hidden_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refusal_hidden_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['circuit_id'], ['circuits.id'], name=op.f('fk_webdav_deposits_circuit_id_circuits'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_webdav_deposits_document_id_documents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_webdav_deposits_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('document_id', name=op.f('pk_webdav_deposits'))
    )
    with op.batch_alter_table('webdav_deposits', schema=None) as batch_op:
        batch_op.create_index('ix_webdav_deposits_folder', ['circuit_id', 'label_folder', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webdav_deposits_subscriber_id'), ['subscriber_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('webdav_deposits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webdav_deposits_subscriber_id'))
        batch_op.drop_index('ix_webdav_deposits_folder')

    op.drop_table('webdav_deposits')
