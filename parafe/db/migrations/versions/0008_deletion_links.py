"""Definitive delete tombstones, per-client download marks, recipients' capability links (issue 15).

- ``document_tombstones``: what stays of a deleted or purged document (id, subscriber, circuit, name, who, when)
  and the blobs still to erase;
- ``document_blob_versions``: every blob a document referenced before (replaced signed versions…), so that a
  delete erases them too;
- ``signed_fetches``: a signed document fetched by a client of its subscriber (``listRemainingSignedDocs``);
- ``download_links``: the recipients' download links (only the SHA-256 of the token is kept);
- indexes on the blob columns (the erasure checks whether another document references a blob);
- soft-deleted documents of earlier versions: their ``document.deleted`` outbox rows (closed as an unknown
  kind before this version) are queued again, so that they are erased too.

Revision ID: 0008_deletion_links
Revises: 0007_search_indexes
Create Date: 2026-12-07 00:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0008_deletion_links'
down_revision: Union[str, Sequence[str], None] = '0007_search_indexes'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

DOC_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_NOT_NULL_SIGNED = {"sqlite_where": sa.text("signed_blob_sha256 IS NOT NULL"),
                    "postgresql_where": sa.text("signed_blob_sha256 IS NOT NULL")}
_NOT_NULL_SIGNATURE = {"sqlite_where": sa.text("signature_blob_sha256 IS NOT NULL"),
                       "postgresql_where": sa.text("signature_blob_sha256 IS NOT NULL")}


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('document_tombstones',
    sa.Column('id', DOC_ID, autoincrement=False, nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('circuit_id', sa.Integer(), nullable=True),
    sa.Column('circuit_key', sa.String(length=255), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('nom_fic', sa.String(length=255), nullable=True),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('deleted_by_id', sa.Integer(), nullable=True),
    sa.Column('deleted_by_name', sa.String(length=255), nullable=False),
    sa.Column('deposited_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blobs', sa.JSON(), nullable=False),
    sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('erased_blobs', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_document_tombstones_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['circuit_id'], ['circuits.id'], name=op.f('fk_document_tombstones_circuit_id_circuits'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['deleted_by_id'], ['users.id'], name=op.f('fk_document_tombstones_deleted_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_document_tombstones'))
    )
    with op.batch_alter_table('document_tombstones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_tombstones_subscriber_id'), ['subscriber_id'], unique=False)
        batch_op.create_index('ix_document_tombstones_pending', ['erased_at'], unique=False)

    op.create_table('document_blob_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', DOC_ID, nullable=False),
    sa.Column('blob', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_document_blob_versions_document_id_documents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_document_blob_versions'))
    )
    with op.batch_alter_table('document_blob_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_blob_versions_document_id'), ['document_id'], unique=False)

    op.create_table('signed_fetches',
    sa.Column('document_id', DOC_ID, autoincrement=False, nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('via', sa.String(length=16), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_signed_fetches_document_id_documents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_signed_fetches_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('document_id', name=op.f('pk_signed_fetches'))
    )

    op.create_table('download_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('document_id', DOC_ID, nullable=True),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('recipients', sa.String(length=1024), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sa.String(length=16), nullable=True),
    sa.Column('uses', sa.Integer(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_download_links_document_id_documents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_download_links_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_download_links')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_download_links_token_hash'))
    )
    with op.batch_alter_table('download_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_download_links_document_id'), ['document_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_download_links_subscriber_id'), ['subscriber_id'], unique=False)

    # is a blob referenced by another document? (the erasure's check)
    op.create_index('ix_documents_blob', 'documents', ['blob_sha256'], unique=False)
    op.create_index('ix_documents_signed_blob', 'documents', ['signed_blob_sha256'], unique=False,
                    **_NOT_NULL_SIGNED)
    op.create_index('ix_documents_signature_blob', 'documents', ['signature_blob_sha256'], unique=False,
                    **_NOT_NULL_SIGNATURE)
    op.create_index('ix_annexes_blob', 'annexes', ['blob_sha256'], unique=False)

    # soft deletes of earlier versions: their job had no handler (closed as unknown); queue it again
    op.execute(sa.text(
        "UPDATE outbox SET done_at = NULL, last_error = NULL, attempts = 0 "
        "WHERE kind = 'document.deleted' AND document_id IS NOT NULL"))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_annexes_blob', table_name='annexes')
    op.drop_index('ix_documents_signature_blob', table_name='documents')
    op.drop_index('ix_documents_signed_blob', table_name='documents')
    op.drop_index('ix_documents_blob', table_name='documents')
    with op.batch_alter_table('download_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_download_links_subscriber_id'))
        batch_op.drop_index(batch_op.f('ix_download_links_document_id'))
    op.drop_table('download_links')
    op.drop_table('signed_fetches')
    with op.batch_alter_table('document_blob_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_blob_versions_document_id'))
    op.drop_table('document_blob_versions')
    with op.batch_alter_table('document_tombstones', schema=None) as batch_op:
        batch_op.drop_index('ix_document_tombstones_pending')
        batch_op.drop_index(batch_op.f('ix_document_tombstones_subscriber_id'))
    op.drop_table('document_tombstones')
