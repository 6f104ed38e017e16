"""OTP signature (DECISIONS D15, issues 6 and 18): public links, codes sent, SMS deliveries and the abuse
counters of a document's OTP step."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from parafe.db.models.base import Base, utcnow


class OtpLink(Base):
    """A public OTP signing link (DECISIONS D15): one random token for one or several documents.

    Created by ``parafe.services.otp.links`` (REST ``otp/url``, ``otp/{siren}/{circuit}/upload``, SOAP
    ``getMultiIdsSmsUrl`` / ``otpUpload``); the OTP pages look the token up. ``document_ids`` are in the order
    given; every document carries the same OTP identity (``signer_email`` / ``signer_phone``).
    """

    __tablename__ = "otp_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    document_ids: Mapped[list[Any]] = mapped_column(JSON)
    signer_index: Mapped[int] = mapped_column(Integer, default=0)  # the OTP step index (OTP_*_i) it signs
    signer_email: Mapped[str | None] = mapped_column(String(255), default=None)
    signer_phone: Mapped[str | None] = mapped_column(String(64), default=None)
    referer: Mapped[str | None] = mapped_column(String(1024), default=None)  # redirect after the OTP page
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class OtpChallenge(Base):
    """One OTP code sent for one or several documents (DECISIONS D15); only a hash of the code is kept."""

    __tablename__ = "otp_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    circuit_id: Mapped[int | None] = mapped_column(ForeignKey("circuits.id", ondelete="SET NULL"), default=None)
    document_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    channel: Mapped[str] = mapped_column(String(8))  # sms | email
    destination: Mapped[str] = mapped_column(String(255))
    code_hash: Mapped[str] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done | locked | expired
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class SmsDelivery(Base):
    """One SMS handed to the configured provider (``services.sms_deliveries``): queued → sent → delivered or
    failed. ``body`` holds the text only until the send is final (it carries an OTP code), then it is erased."""

    __tablename__ = "sms_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True,
                                                      default=None)
    circuit_id: Mapped[int | None] = mapped_column(ForeignKey("circuits.id", ondelete="SET NULL"), default=None)
    challenge_id: Mapped[int | None] = mapped_column(ForeignKey("otp_challenges.id", ondelete="SET NULL"),
                                                     index=True, default=None)
    document_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    provider: Mapped[str] = mapped_column(String(16))  # outbox | ovh | http
    recipient: Mapped[str] = mapped_column(String(32))  # E.164
    body: Mapped[str | None] = mapped_column(Text, default=None)
    encoding: Mapped[str] = mapped_column(String(8))  # GSM-7 | UCS-2
    message_length: Mapped[int] = mapped_column(Integer)
    segments: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | sent | delivered | failed
    provider_id: Mapped[str | None] = mapped_column(String(128), index=True, default=None)
    provider_status: Mapped[str | None] = mapped_column(String(64), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)  # no send after this (the code expired)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    failed_at: Mapped[datetime | None] = mapped_column(default=None)
    checked_at: Mapped[datetime | None] = mapped_column(default=None)  # last status poll


class OtpUsage(Base):
    """OTP codes sent and wrong codes typed for one document at one OTP step (issue 18): the OTP pages refuse
    a code past ``PARAFE_OTP_MAX_CODES`` and lock the document's links after ``PARAFE_OTP_MAX_FAILURES``."""

    __tablename__ = "otp_usage"

    document_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("documents.id", ondelete="CASCADE"),
        primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    codes_sent: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[datetime | None] = mapped_column(default=None)
