"""Helios through S²LOW (issue 16): a subscriber's S²LOW account, the PES posted and the PES_Retour fetched."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parafe.db.models.base import Base, utcnow


class S2lowAccount(Base):
    """The S²LOW account of a subscriber (Helios through S²LOW, issue 16): URL, client certificate, login.

    The key, the PKCS#12-derived key and the passwords are secrets: never printed or logged."""

    __tablename__ = "s2low_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), unique=True)
    url: Mapped[str] = mapped_column(String(1024))
    cert_pem: Mapped[str] = mapped_column(Text)  # client certificate (+ its chain), PEM
    key_pem: Mapped[str] = mapped_column(Text)  # its private key, PKCS#8 PEM (secret)
    ca_pem: Mapped[str | None] = mapped_column(Text, default=None)  # the server's CA, PEM (else the system's)
    login: Mapped[str | None] = mapped_column(String(255), default=None)
    password: Mapped[str | None] = mapped_column(String(255), default=None)  # secret
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    retours_polled_at: Mapped[datetime | None] = mapped_column(default=None)


class S2lowTransaction(Base):
    """One PES posted to S²LOW: the intent is stored before the post, the transaction id as soon as S²LOW answers
    (a retried post after a lost answer must never create a second transaction)."""

    __tablename__ = "s2low_transactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)  # the transmission key (document + file)
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True, default=None)
    account: Mapped[str] = mapped_column(String(64))  # "subscriber:<id>" or "default"
    filename: Mapped[str] = mapped_column(String(255))
    sha1: Mapped[str] = mapped_column(String(40), index=True)  # S²LOW's duplicate key
    status: Mapped[str] = mapped_column(String(16), default="posting")  # posting | posted | lost | refused
    transaction_id: Mapped[str | None] = mapped_column(String(32), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    attempted_at: Mapped[datetime | None] = mapped_column(default=None)  # start of the latest post
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)  # S2low\Enum\HeliosStatus value
    last_message: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    posted_at: Mapped[datetime | None] = mapped_column(default=None)


class S2lowRetour(Base):
    """A PES_Retour fetched from S²LOW, once per (account, S²LOW id); ``read_at`` once marked read there."""

    __tablename__ = "s2low_retours"
    __table_args__ = (UniqueConstraint("account", "retour_id", name="uq_s2low_retours_account_retour"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    retour_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    return_id: Mapped[int | None] = mapped_column(ForeignKey("returns.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(default=None)
