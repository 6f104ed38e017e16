"""Abuse limits: OTP codes per document, login throttling, document error state (issue 18).

Revision ID: 0011_abuse_limits
Revises: 0010_s2low
Create Date: 2026-12-07 00:00:00

``otp_usage`` counts the OTP codes sent and the wrong codes typed per document and OTP step (the cap and the
lock of the OTP pages); ``login_throttle`` counts failed Basic authentications per account and per client
address (the back-off, shared by every server process and node). The document error state needs no column
(``documents.state`` is a string; the failed job is kept in ``documents.extra``).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0011_abuse_limits'
down_revision: str | Sequence[str] | None = '0010_s2low'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('otp_usage',
    sa.Column('document_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('codes_sent', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'],
                            name=op.f('fk_otp_usage_document_id_documents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('document_id', 'position', name=op.f('pk_otp_usage'))
    )
    op.create_table('login_throttle',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_throttle')),
    sa.UniqueConstraint('scope', 'key', name=op.f('uq_login_throttle_scope'))
    )


def downgrade() -> None:
    op.drop_table('login_throttle')
    op.drop_table('otp_usage')
