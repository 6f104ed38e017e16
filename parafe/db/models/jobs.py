"""The transactional outbox of the job queue, and the mails and SMS kept by the development providers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from parafe.db.models.base import Base, utcnow


class OutboxItem(Base):
    """Work that must follow a committed state change (transactional outbox); executed by the job queue."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "done_at", "available_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True, default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(default=None)


class DevMessage(Base):
    """A mail or SMS kept by the development providers (no SMTP configured, SMS provider ``outbox``)."""

    __tablename__ = "dev_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))  # mail | sms
    recipient: Mapped[str] = mapped_column(String(1024), index=True)
    subject: Mapped[str | None] = mapped_column(String(1024), default=None)
    body: Mapped[str] = mapped_column(Text)
    document_id: Mapped[int | None] = mapped_column(BigInteger, default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
