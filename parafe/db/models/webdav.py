"""The WebDAV connector's deposits (issue 7, DECISIONS D6)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from parafe.db.models.base import Base, utcnow


class WebdavDeposit(Base):
    """One accepted WebDAV deposit (DECISIONS D6): its receipt in ``in/`` and where its returns go in ``out/``.

    The receipt (same name as the PUT, size, ETag = docid) is listed for 15 minutes after ``created_at``
    unless hidden by a DELETE. Returns of the document (signed file, ``ACQUIT_<name>``, ``<name>.refus.xml``)
    are listed under ``out/<circuit>/<label_folder>`` (``label_folder`` ``""``: deposited at the circuit root);
    ``*_hidden_at`` record a DELETE or the 15-day purge of one of them (acknowledgements use
    ``ReturnItem.webdav_deleted_at``).
    """

    __tablename__ = "webdav_deposits"
    __table_args__ = (Index("ix_webdav_deposits_folder", "circuit_id", "label_folder", "created_at"),)

    document_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("documents.id", ondelete="CASCADE"),
        primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuits.id", ondelete="CASCADE"))
    label_folder: Mapped[str] = mapped_column(String(255), default="")
    put_name: Mapped[str] = mapped_column(String(255))  # last segment of the PUT, NFC (a bundle: x.pdf.zip)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    receipt_hidden_at: Mapped[datetime | None] = mapped_column(default=None)
    signed_hidden_at: Mapped[datetime | None] = mapped_column(default=None)
    refusal_hidden_at: Mapped[datetime | None] = mapped_column(default=None)
