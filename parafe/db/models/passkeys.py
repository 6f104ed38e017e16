"""Passkey-confirmed signature with a server-held key (issue 20, parafe.services.signers.passkeys)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from parafe.db.models.base import Base, utcnow


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
