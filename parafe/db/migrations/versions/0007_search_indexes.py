"""Search indexes (issue 10, docs/search.md): composite indexes of the criteria of services.search.

Documents: live documents only (partial, ``deleted_at IS NULL`` as every search says), ``id`` in the key for
PostgreSQL index-only scans. History: on PostgreSQL only the entries the search reads (visa and signature
states). Metadata: (name, value, document_id). Labels: by name.

Plain ``CREATE INDEX`` inside the migration's transaction: writes to these tables wait while it runs (10–20 s
in all on PostgreSQL with 1,000,000 documents and 5,900,000 history entries, 2 s on SQLite with 100,000
documents; see docs/search.md).

Revision ID: 0007_search_indexes
Revises: 0006_oss
Create Date: 2026-12-05 00:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0007_search_indexes'
down_revision: Union[str, Sequence[str], None] = '0006_oss'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LIVE = {"sqlite_where": sa.text("deleted_at IS NULL"), "postgresql_where": sa.text("deleted_at IS NULL")}
SEARCHED_HISTORY = {"postgresql_where": sa.text("state IN ('approved', 'signed', 'otp_signed')")}

INDEXES: tuple[tuple[str, str, list[str], dict[str, sa.TextClause]], ...] = (
    ("ix_documents_search_subscriber", "documents", ["subscriber_id", "id", "circuit_id"], LIVE),
    ("ix_documents_search_circuit", "documents", ["subscriber_id", "circuit_id", "state", "id", "created_at"], LIVE),
    ("ix_documents_search_created", "documents", ["subscriber_id", "created_at", "id", "circuit_id"], LIVE),
    ("ix_documents_search_uploader", "documents", ["subscriber_id", "uploader_id", "circuit_id", "id"], LIVE),
    ("ix_documents_search_label", "documents", ["label_id", "subscriber_id", "id", "circuit_id"], LIVE),
    ("ix_documents_search_name", "documents", ["subscriber_id", "name"], LIVE),
    ("ix_history_search", "history_entries", ["user_id", "state", "created_at", "document_id"], SEARCHED_HISTORY),
    ("ix_history_search_date", "history_entries", ["state", "created_at", "document_id"], SEARCHED_HISTORY),
    ("ix_metadata_values_search", "metadata_values", ["name", "value", "document_id"], {}),
    ("ix_labels_name", "labels", ["name"], {}),
)


def upgrade() -> None:
    """Upgrade schema."""
    for name, table, columns, where in INDEXES:
        op.create_index(name, table, columns, unique=False, **where)


def downgrade() -> None:
    """Downgrade schema."""
    for name, table, _columns, _where in reversed(INDEXES):
        op.drop_index(name, table_name=table)
