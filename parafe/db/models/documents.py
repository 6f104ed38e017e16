"""Parapheur documents: the document row and its annexes, metadata, history and returns; what stays of a deleted
document, blobs it referenced before, signed documents fetched and recipients' download links (issue 15).

The (circuit, label, name) triplet is unique among live documents (partial unique index); NomFic values are
reserved forever in ``pes_nomfic``. A document's replaced blobs are recorded before each flush
(:func:`_record_replaced_blobs`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Identity, Index, Integer, String, Text, event, text
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from parafe.db.models.base import DOCUMENT_ID_START, Base, utcnow
from parafe.db.models.circuits import Circuit, Label

_LIVE: dict[str, Any] = {"sqlite_where": text("deleted_at IS NULL"), "postgresql_where": text("deleted_at IS NULL")}


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        Index(
            "uq_documents_live_triplet", "circuit_id", "label_id", "name", unique=True,
            sqlite_where=text("deleted_at IS NULL"), postgresql_where=text("deleted_at IS NULL")),
        Index("ix_documents_subscriber_state", "subscriber_id", "state"),
        Index("ix_documents_circuit_created", "circuit_id", "created_at"),
        # search (services.search, docs/search.md): live documents only, ``id`` in the key so that PostgreSQL
        # answers from the index alone (index-only scans) and ids come out in order where the prefix is fixed.
        Index("ix_documents_search_subscriber", "subscriber_id", "id", "circuit_id", **_LIVE),
        Index("ix_documents_search_circuit", "subscriber_id", "circuit_id", "state", "id", "created_at", **_LIVE),
        Index("ix_documents_search_created", "subscriber_id", "created_at", "id", "circuit_id", **_LIVE),
        Index("ix_documents_search_uploader", "subscriber_id", "uploader_id", "circuit_id", "id", **_LIVE),
        Index("ix_documents_search_label", "label_id", "subscriber_id", "id", "circuit_id", **_LIVE),
        Index("ix_documents_search_name", "subscriber_id", "name", **_LIVE),
        # is a blob referenced by another document? (services.erasure, issue 15)
        Index("ix_documents_blob", "blob_sha256"),
        Index("ix_documents_signed_blob", "signed_blob_sha256", sqlite_where=text("signed_blob_sha256 IS NOT NULL"),
              postgresql_where=text("signed_blob_sha256 IS NOT NULL")),
        Index("ix_documents_signature_blob", "signature_blob_sha256",
              sqlite_where=text("signature_blob_sha256 IS NOT NULL"),
              postgresql_where=text("signature_blob_sha256 IS NOT NULL")),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), Identity(start=DOCUMENT_ID_START), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuits.id"))
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id"))
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # pdf | pes | xml | office
    state: Mapped[str] = mapped_column(String(32))  # parafe.domain.states.State value
    blob_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    signed_blob_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    signature_blob_sha256: Mapped[str | None] = mapped_column(String(64), default=None)  # detached XAdES
    nom_fic: Mapped[str | None] = mapped_column(String(255), default=None)
    uploader_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    comment: Mapped[str | None] = mapped_column(String(255), default=None)
    email_destinataire: Mapped[str | None] = mapped_column(String(1024), default=None)
    email_cc: Mapped[str | None] = mapped_column(String(1024), default=None)
    source: Mapped[str] = mapped_column(String(16), default="ws")  # ws | webdav | portal
    current_step: Mapped[int | None] = mapped_column(Integer, default=None)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    refusal_message: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)

    circuit: Mapped[Circuit] = relationship()
    label: Mapped[Label] = relationship()
    annexes: Mapped[list[Annex]] = relationship(order_by="Annex.position", cascade="all, delete-orphan")
    metadata_values: Mapped[list[MetadataValue]] = relationship(
        order_by="MetadataValue.position", cascade="all, delete-orphan")
    history: Mapped[list[HistoryEntry]] = relationship(
        order_by="HistoryEntry.id", cascade="all, delete-orphan")


class PesNomFic(Base):
    """NomFic values ever accepted, unique across all subscribers (spec §1.2.7)."""

    __tablename__ = "pes_nomfic"

    nom_fic: Mapped[str] = mapped_column(String(255), primary_key=True)
    document_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Annex(Base):
    __tablename__ = "annexes"
    __table_args__ = (Index("ix_annexes_blob", "blob_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    blob_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)


class MetadataValue(Base):
    __tablename__ = "metadata_values"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), default="meta")  # meta | otp

    __table_args__ = (
        Index("ix_metadata_values_name_value", "name", "value"),
        Index("ix_metadata_values_search", "name", "value", "document_id"),  # meta criterion, index-only
    )


# The history states the search filters on (services.search VISA_STATES + SIGN_STATES): on PostgreSQL the two
# search indexes hold only these entries (a quarter of the history; other entries cost them nothing).
_SEARCHED_HISTORY: dict[str, Any] = {"postgresql_where": text("state IN ('approved', 'signed', 'otp_signed')")}


class HistoryEntry(Base):
    __tablename__ = "history_entries"
    __table_args__ = (
        Index("ix_history_document_state", "document_id", "state"),
        Index("ix_history_search", "user_id", "state", "created_at", "document_id", **_SEARCHED_HISTORY),
        Index("ix_history_search_date", "state", "created_at", "document_id", **_SEARCHED_HISTORY),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    state: Mapped[str | None] = mapped_column(String(32))  # None: the spec's "stateName": null entries
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    user_fullname: Mapped[str] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ReturnItem(Base):
    """Something a client fetches back: Helios acknowledgement, PES_Retour, Chorus flow (DECISIONS D11)."""

    __tablename__ = "returns"
    __table_args__ = (Index("ix_returns_remaining", "subscriber_id", "kind", "downloaded_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True, default=None)
    public_id: Mapped[int] = mapped_column(BigInteger, index=True)  # the id clients see in remaining lists
    kind: Mapped[str] = mapped_column(String(16))  # ack | pes_retour | chorus
    name: Mapped[str] = mapped_column(String(255))
    blob_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    downloaded_at: Mapped[datetime | None] = mapped_column(default=None)
    webdav_deleted_at: Mapped[datetime | None] = mapped_column(default=None)


# --- definitive delete, signed documents fetched, recipients' links (issue 15) ---------------------------------


class DocumentTombstone(Base):
    """What stays of a deleted or purged document (``parafe.services.documents.erasure``): who, what, when — for the
    audit trail. ``blobs`` are the blobs still to erase (emptied once done); the NomFic stays in ``pes_nomfic``."""

    __tablename__ = "document_tombstones"
    __table_args__ = (Index("ix_document_tombstones_pending", "erased_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=False)  # the document's id
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    circuit_id: Mapped[int | None] = mapped_column(ForeignKey("circuits.id", ondelete="SET NULL"), default=None)
    circuit_key: Mapped[str] = mapped_column(String(255))
    label: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    nom_fic: Mapped[str | None] = mapped_column(String(255), default=None)
    reason: Mapped[str] = mapped_column(String(16))  # delete | purge
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    deleted_by_name: Mapped[str] = mapped_column(String(255))
    deposited_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_at: Mapped[datetime] = mapped_column(default=utcnow)
    blobs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    erased_at: Mapped[datetime | None] = mapped_column(default=None)
    erased_blobs: Mapped[int] = mapped_column(Integer, default=0)


class DocumentBlobVersion(Base):
    """A blob a document referenced before (a signed version replaced by the next signature…): erased with the
    document. Recorded by :func:`_record_replaced_blobs`; not a reference for the orphan sweeper."""

    __tablename__ = "document_blob_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    blob: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SignedFetch(Base):
    """A signed document fetched by a client of its subscriber (SOAP/REST ``download``, WebDAV ``out/`` GET): it
    leaves ``listRemainingSignedDocs``."""

    __tablename__ = "signed_fetches"

    document_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("documents.id", ondelete="CASCADE"),
        primary_key=True, autoincrement=False)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    via: Mapped[str] = mapped_column(String(16))  # soap | rest | webdav
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


class DownloadLink(Base):
    """A recipients' download link (spec §2.6.3 ``email_destinataire`` / ``email_CC``): a capability URL whose
    token is never stored (only its SHA-256), valid until ``expires_at`` unless revoked (document deleted or
    purged)."""

    __tablename__ = "download_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    document_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("documents.id", ondelete="SET NULL"), index=True,
        default=None)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    recipients: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_reason: Mapped[str | None] = mapped_column(String(16), default=None)  # delete | purge
    uses: Mapped[int] = mapped_column(Integer, default=0)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


_BLOB_COLUMNS = ("blob_sha256", "signed_blob_sha256", "signature_blob_sha256")


def _record_replaced_blobs(session: Session, flush_context: Any, instances: Any) -> None:
    """Before a flush: a document blob column changed → keep the previous blob in ``document_blob_versions``.
    Walks the modified states of the identity map (``session.dirty`` computes the net changes of every object of
    the session first: 0.77 ms per flush of a worker's closing transaction, issue 17)."""
    for state in list(session.identity_map.all_states()):
        if not state.modified:
            continue
        obj = state.obj()
        if not isinstance(obj, Document):
            continue
        for column in _BLOB_COLUMNS:
            history = state.attrs[column].history
            for old in history.deleted or ():
                if old and old not in (history.added or ()):
                    session.add(DocumentBlobVersion(document_id=obj.id, blob=old, created_at=utcnow()))


event.listen(Session, "before_flush", _record_replaced_blobs)
