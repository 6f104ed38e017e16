"""Circuits of a subscriber: their steps and step members, the roles of users on them, and their labels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from parafe.db.models.base import Base, utcnow


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
