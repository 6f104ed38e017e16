"""Subscribers, their users (accounts, client certificates, groups), failed Basic logins and absence
delegations between users."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from parafe.db.models.base import Base, utcnow


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
