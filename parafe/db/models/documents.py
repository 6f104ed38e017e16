"""Database schema (SQLAlchemy 2 declarative models) of Parafe.

One schema for SQLite (default) and PostgreSQL. Document ids come from an identity starting at 100000000
(DECISIONS D1). Blobs are referenced by sha256 (see :mod:`parafe.storage`). The (circuit, label, name) triplet is
unique among live documents (partial unique index); NomFic values are reserved forever in ``pes_nomfic``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    inspect,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

DOCUMENT_ID_START = 100_000_000

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(DateTime):
    """Timezone-aware UTC datetimes on both SQLite and PostgreSQL."""

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    siren: Mapped[str] = mapped_column(String(9), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # issue 21


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("subscriber_id", "email", name="uq_users_subscriber_email"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(255), index=True)
    firstname: Mapped[str] = mapped_column(String(255), default="")
    lastname: Mapped[str] = mapped_column(String(255), default="")
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    quality: Mapped[str | None] = mapped_column(String(255), default=None)  # shown in signature pictograms
    authentication_type: Mapped[str] = mapped_column(String(16), default="CERTIFICAT")  # CERTIFICAT | BASIC
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)  # argon2, BASIC accounts
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)  # subscriber administrator
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # daily digest of the documents waiting for the user (issue 20, parafe.services.digest): opt-out, and the
    # Paris date (AAAA-MM-JJ) of the last one sent (one digest a day, whatever the number of workers)
    digest_mail: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    digest_sent_on: Mapped[str | None] = mapped_column(String(10), default=None)

    subscriber: Mapped[Subscriber] = relationship()
    certificates: Mapped[list[UserCertificate]] = relationship(
        back_populates="user", cascade="all, delete-orphan")

    @property
    def full_name(self) -> str:
        return f"{self.firstname} {self.lastname}".strip() or self.email


class UserCertificate(Base):
    __tablename__ = "user_certificates"
    __table_args__ = (UniqueConstraint("user_id", "fingerprint", name="uq_user_certificates_user_fp"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)  # sha256 of the DER, lower-case hex
    subject: Mapped[str] = mapped_column(String(1024), default="")
    not_after: Mapped[datetime | None] = mapped_column(default=None)
    pem: Mapped[str | None] = mapped_column(Text, default=None)

    user: Mapped[User] = relationship(back_populates="certificates")


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("subscriber_id", "name", name="uq_groups_subscriber_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class Circuit(Base):
    __tablename__ = "circuits"
    __table_args__ = (UniqueConstraint("subscriber_id", "key", name="uq_circuits_subscriber_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(255))  # the circuitId of the web services
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64))  # BUREAUTIQUE_PDF, BUREAUTIQUE_XML, HELIOS_*
    pes_pj: Mapped[bool] = mapped_column(Boolean, default=False)  # PES-PJ circuit (no bordereau required)
    on_demand: Mapped[bool] = mapped_column(Boolean, default=False)  # created for one on-demand deposit
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metadata_model: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    steps: Mapped[list[CircuitStep]] = relationship(
        order_by="CircuitStep.position", cascade="all, delete-orphan", back_populates="circuit")


class CircuitRole(Base):
    __tablename__ = "circuit_roles"

    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuits.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)  # agent | valideur | signataire


class CircuitStep(Base):
    __tablename__ = "circuit_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuits.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))  # see parafe.domain.circuits.StepKind
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    circuit: Mapped[Circuit] = relationship(back_populates="steps")
    members: Mapped[list[StepMember]] = relationship(cascade="all, delete-orphan")


class StepMember(Base):
    __tablename__ = "step_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("circuit_steps.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), default=None)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), default=None)
    email: Mapped[str | None] = mapped_column(String(255), default=None)  # OTP signers outside the subscriber


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("circuit_id", "name", name="uq_labels_circuit_name"),
        Index("ix_labels_name", "name"),  # search by label (docs/search.md)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuits.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


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


# --- workflow (issue 6): OTP codes and the development outbox of mails and SMS --------------------------------


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


# --- WebDAV connector (issue 7) --------------------------------------------------------------------------------


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


# --- OSS server-signature service (issue 9, spec §3, DECISIONS D7) ----------------------------------------------

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
    """Before a flush: a document blob column changed → keep the previous blob in ``document_blob_versions``."""
    for obj in list(session.dirty):
        if not isinstance(obj, Document):
            continue
        state = inspect(obj)
        for column in _BLOB_COLUMNS:
            history = state.attrs[column].history
            for old in history.deleted or ():
                if old and old not in (history.added or ()):
                    session.add(DocumentBlobVersion(document_id=obj.id, blob=old, created_at=utcnow()))


event.listen(Session, "before_flush", _record_replaced_blobs)


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


class LoginThrottle(Base):
    """Failed Basic authentications of one account (``scope='account'``, the login in lower case) or one client
    address (``scope='address'``) and the back-off they earned (issue 18; in the database so that every server
    process and node agrees)."""

    __tablename__ = "login_throttle"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # account | address
    key: Mapped[str] = mapped_column(String(255))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(default=utcnow)
    blocked_until: Mapped[datetime | None] = mapped_column(default=None)


# --- compliance report per client certificate (issue 21, parafe.services.compliance) ---------------------------


class ComplianceClient(Base):
    """A client certificate seen by the connectors: who it names and when it was last seen."""

    __tablename__ = "compliance_clients"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(1024), default="")
    email: Mapped[str | None] = mapped_column(String(255), default=None)
    not_after: Mapped[datetime | None] = mapped_column(default=None)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class ComplianceCounter(Base):
    """How many calls of one kind a client made in one hour (upserted in batches, never one row per call)."""

    __tablename__ = "compliance_counters"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    min_gap: Mapped[float | None] = mapped_column(Float, default=None)  # listings: shortest interval (seconds)
    last_at: Mapped[datetime] = mapped_column(default=utcnow)


class ComplianceExample(Base):
    """One of the last examples of a rule's breach (a capped ring per client and rule)."""

    __tablename__ = "compliance_examples"
    __table_args__ = (Index("ix_compliance_examples_rule", "fingerprint", "rule", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    detail: Mapped[str] = mapped_column(String(512), default="")


class CompliancePending(Base):
    """Something a client still owes: a return fetched from ``out/`` but not deleted, a refused file of ``in/``
    not removed (capped per client)."""

    __tablename__ = "compliance_pending"
    __table_args__ = (UniqueConstraint("fingerprint", "kind", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # fetched | blocked
    key: Mapped[str] = mapped_column(String(512))
    at: Mapped[datetime] = mapped_column(default=utcnow)


# --- passkey-confirmed signature with a server-held key (issue 20, parafe.services.signers.passkeys) ---


class ServerKey(Base):
    """A signing key held by the server for one account: in the operator's PKCS#11 token (``kind='pkcs11'``,
    object label ``key_label``) or encrypted at rest under the operator's secret (``kind='encrypted'``, PKCS#8
    PEM). Each use needs a fresh passkey assertion of the account (see :class:`PasskeyChallenge`)."""

    __tablename__ = "server_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # pkcs11 | encrypted
    key_label: Mapped[str | None] = mapped_column(String(255), default=None)
    encrypted_key: Mapped[str | None] = mapped_column(Text, default=None)
    certificate_pem: Mapped[str] = mapped_column(Text)
    chain_pem: Mapped[str] = mapped_column(Text, default="")
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Passkey(Base):
    """A WebAuthn credential (passkey) of one account, registered from the portal."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[str] = mapped_column(String(1024), unique=True)  # base64url, no padding
    public_key: Mapped[str] = mapped_column(Text)  # COSE key, base64url
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(255), default="")
    transports: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_by: Mapped[str | None] = mapped_column(String(255), default=None)
    pending: Mapped[bool] = mapped_column(Boolean, default=False)  # enrolled after a password login
    validated_by: Mapped[str | None] = mapped_column(String(255), default=None)


class PasskeyChallenge(Base):
    """A WebAuthn challenge, accepted once: registration (``purpose='register'``) or the confirmation of one
    signing session (``purpose='sign'``: the challenge is a hash over the session's digests and ``nonce``)."""

    __tablename__ = "passkey_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[str] = mapped_column(String(64), unique=True)  # hex
    challenge: Mapped[str] = mapped_column(String(128))  # base64url
    session_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    credential_id: Mapped[str | None] = mapped_column(String(1024), default=None)


# --- absence delegation (issue 20, parafe.services.delegations) ------------------------------------------------


class Delegation(Base):
    """During [``starts_at``, ``ends_at``), ``delegate`` sees and acts on the visa and signature steps waiting
    for ``delegator`` (on the circuits where the delegate holds the same role); the history says « par
    délégation de … »."""

    __tablename__ = "delegations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delegator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    delegate_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
