"""The compliance report per client certificate (issue 21, parafe.services.compliance)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parafe.db.models.base import Base, utcnow


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
