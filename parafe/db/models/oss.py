"""The OSS server-signature service (issue 9, spec §3, DECISIONS D7): workflows and their members, documents
(ids from 500000000), signing pages, their codes and the certificate authentication log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Identity, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from parafe.db.models.base import Base, utcnow

OSS_DOCUMENT_ID_START = 500_000_000


class OssWorkflow(Base):
    """An OSS workflow (spec §3.3): its server signature type, server certificate, agents, metadata model and
    pictogram. ``key`` is the ``workflowId`` of the web services (unique across subscribers)."""

    __tablename__ = "oss_workflows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    signature_level: Mapped[str] = mapped_column(String(8), default="B-B")  # PAdES B-B | B-T
    modes: Mapped[list[Any]] = mapped_column(JSON, default=list)  # server | sa | sms | sgc
    certificate_p12: Mapped[str | None] = mapped_column(String(1024), default=None)  # path, relative to home
    certificate_password: Mapped[str | None] = mapped_column(String(255), default=None)
    metadata_model: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    pictogram: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # default position, size (cm)
    retention_days: Mapped[int] = mapped_column(Integer, default=30)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OssWorkflowMember(Base):
    """Who may use an OSS workflow: ``agent`` (calls the web services) or ``admin`` (configures, supervises)."""

    __tablename__ = "oss_workflow_members"

    workflow_id: Mapped[int] = mapped_column(ForeignKey("oss_workflows.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)


class OssDocument(Base):
    """A document of the OSS service. Ids come from their own range (500000000 and up): never confused with a
    parapheur document id."""

    __tablename__ = "oss_documents"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), Identity(start=OSS_DOCUMENT_ID_START), primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("oss_workflows.id"), index=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    mode: Mapped[str] = mapped_column(String(8))  # server | sa | sms | sgc
    status: Mapped[str] = mapped_column(String(16))  # waiting | signing | signed | refused | failed
    filename: Mapped[str] = mapped_column(String(255))
    blob_sha256: Mapped[str | None] = mapped_column(String(64))  # None once purged
    size: Mapped[int] = mapped_column(BigInteger)
    signed_blob_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    signed_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    meta_blob_sha256: Mapped[str | None] = mapped_column(String(64), default=None)  # the metaFile as sent
    metadata_values: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [[name, value], ...]
    pictogram: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)  # requested placement (points)
    redirection_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    signer: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)  # firstname, lastname, email, phone
    signer_certificate: Mapped[str | None] = mapped_column(Text, default=None)  # PEM of the signing certificate
    uploader_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    signature_date: Mapped[datetime | None] = mapped_column(default=None)
    download_date: Mapped[datetime | None] = mapped_column(default=None)
    date_to_purge: Mapped[datetime] = mapped_column(index=True)
    purge_date: Mapped[datetime | None] = mapped_column(default=None)
    archive_date: Mapped[datetime | None] = mapped_column(default=None)


class OssLink(Base):
    """A public signing page (uploadSA/SMS/SGC, generateSAUrl/SMSUrl): a random token (only its SHA-256 is
    kept) for one or several documents of one kind of signature."""

    __tablename__ = "oss_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # sa | sms | sgc
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    redirection_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    signer: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)  # signed | refused | error
    codes_sent: Mapped[int] = mapped_column(Integer, default=0)


class OssLinkDocument(Base):
    __tablename__ = "oss_link_documents"

    link_id: Mapped[int] = mapped_column(ForeignKey("oss_links.id", ondelete="CASCADE"), primary_key=True)
    document_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("oss_documents.id", ondelete="CASCADE"),
        primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class OssCode(Base):
    """A one-time code sent for a link (SMS or e-mail, DECISIONS D15); only a salted hash is kept."""

    __tablename__ = "oss_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("oss_links.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(8))  # sms | email
    destination: Mapped[str] = mapped_column(String(255))
    code_hash: Mapped[str] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done | locked | replaced
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class OssAuthLog(Base):
    """The certificate authentication log of a signer (uploadSA, spec §3.4.2), returned by docInformation."""

    __tablename__ = "oss_auth_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("oss_documents.id", ondelete="CASCADE"),
        index=True)
    link_id: Mapped[int | None] = mapped_column(ForeignKey("oss_links.id", ondelete="SET NULL"), default=None)
    event: Mapped[str] = mapped_column(String(16))  # authentication | signature | refusal
    subject: Mapped[str] = mapped_column(String(1024))
    issuer: Mapped[str] = mapped_column(String(1024))
    serial: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
