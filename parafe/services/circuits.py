"""The circuits a caller may deposit into or act in, as the web services list them (SOAP ``getCircuits``),
and the SMS sent for them (SOAP ``getSMSHistory``).

:func:`list_circuits` answers, for one subscriber, the caller's circuits (every circuit for the subscriber's
admin, else those where the caller has a role), on-demand circuits excluded, each with its key
(``circuitId``), name, type and the people of its visa steps (``validators``) and signature steps
(``signers``), in step order, group members expanded, each person once.

:func:`sms_history` lists the OTP codes sent by SMS for a subscriber's circuits (spec §2.5.20), from the OTP
challenges of the workflow and their SMS deliveries (provider, delivery status, sent / delivered times, length
and segments: ``services.sms_deliveries``); the code itself is never given back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from parafe.context import AppContext
from parafe.db.models import Circuit, CircuitRole, CircuitStep, GroupMember, OtpChallenge, SmsDelivery, User
from parafe.domain.circuits import StepKind
from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import Principal
from parafe.services.access.rights import subscriber_account


@dataclass(frozen=True)
class Person:
    """A circuit member as ``userVO``: ``username`` (the e-mail, the login of certificate accounts) and full
    name."""

    username: str
    full_name: str


@dataclass(frozen=True)
class CircuitInfo:
    key: str
    name: str
    type: str
    signers: list[Person] = field(default_factory=list)
    validators: list[Person] = field(default_factory=list)


def _members(session: Session, step: CircuitStep, users: dict[int, User]) -> list[Person]:
    people: list[Person] = []
    for member in step.members:
        ids: list[int] = []
        if member.user_id is not None:
            ids.append(member.user_id)
        if member.group_id is not None:
            ids += list(session.scalars(select(GroupMember.user_id).where(GroupMember.group_id == member.group_id)
                                        .order_by(GroupMember.user_id)))
        for user_id in ids:
            user = users.get(user_id) or session.get(User, user_id)
            if user is not None and user.active:
                users[user_id] = user
                people.append(Person(user.email, user.full_name))
        if member.user_id is None and member.group_id is None and member.email:
            people.append(Person(member.email, member.email))
    return people


def _unique(people: list[Person]) -> list[Person]:
    seen: set[str] = set()
    result: list[Person] = []
    for person in people:
        if person.username not in seen:
            seen.add(person.username)
            result.append(person)
    return result


def list_circuits(ctx: AppContext, principal: Principal, siren: str) -> list[CircuitInfo]:
    """The caller's circuits in subscriber ``siren``, ordered by key.

    Raises ``SUBSCRIBER_UNKNOWN_OR_FORBIDDEN`` (S05) for a siren the caller has no account in.
    """
    with ctx.db.read() as session:
        subscriber, account = subscriber_account(session, principal, siren)
        stmt = (select(Circuit).where(Circuit.subscriber_id == subscriber.id, Circuit.on_demand.is_(False))
                .options(selectinload(Circuit.steps).selectinload(CircuitStep.members))
                .order_by(Circuit.key))
        if not account.is_admin:
            stmt = stmt.where(Circuit.id.in_(select(CircuitRole.circuit_id).where(
                CircuitRole.user_id == account.user_id)))
        users: dict[int, User] = {}
        result: list[CircuitInfo] = []
        for circuit in session.scalars(stmt):
            signers: list[Person] = []
            validators: list[Person] = []
            for step in circuit.steps:
                if step.kind == StepKind.SIGNATURE.value:
                    signers += _members(session, step, users)
                elif step.kind == StepKind.VISA.value:
                    validators += _members(session, step, users)
            result.append(CircuitInfo(circuit.key, circuit.name, circuit.type, _unique(signers),
                                      _unique(validators)))
        return result



@dataclass(frozen=True)
class SmsEntry:
    """One SMS sent by the platform (an OTP code), without its text; the delivery fields come from
    ``sms_deliveries`` (None / 0 for codes sent before deliveries were recorded)."""

    id: int
    circuit: str | None
    receiver: str
    created_at: datetime
    status: str  # the OTP code: pending | done | expired | locked | replaced | failed (never delivered)
    provider: str | None = None  # outbox | ovh | http
    delivery: str | None = None  # queued | sent | delivered | failed
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    message_length: int = 0
    segments: int = 0
    encoding: str | None = None
    error: str | None = None
    provider_id: str | None = None


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def _period(value: str | None) -> tuple[datetime, datetime] | None:
    """``yyyy-MM`` (year >= 2015; month ``00`` = the whole year) as a [start, end) UTC range; None = all."""
    if value is None or not value.strip():
        return None
    match = _MONTH.match(value.strip())
    year, month = (int(match.group(1)), int(match.group(2))) if match else (0, -1)
    if year < 2015 or not 0 <= month <= 12:
        raise ParafeError(E.BAD_REQUEST, reason="le paramètre « date » doit être au format AAAA-MM (AAAA ≥ 2015)")
    if month == 0:
        return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC) if month == 12 else datetime(year, month + 1, 1, tzinfo=UTC)
    return datetime(year, month, 1, tzinfo=UTC), end


# getSMSHistory status filters (v3.4 §2.5.20; their meaning is not stated, G-35): `pending` = the code was
# sent and can still be typed, `done` = it was used to sign, `waiting` = it can no longer be used without having
# been used (expired, locked after 3 wrong tries, replaced by a new code, never delivered: `failed`); `not_X` =
# every other SMS. An empty
# or unknown value means no filter.
_SMS_STATUS: dict[str, frozenset[str]] = {
    "pending": frozenset({"pending"}),
    "done": frozenset({"done"}),
    "waiting": frozenset({"expired", "locked", "replaced", "failed"}),
}


def _limit(value: str | int | None) -> int | None:
    """``limit``: a positive number caps the list, 0 (or nothing) means no limit."""
    if value is None or str(value).strip() == "":
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ParafeError(E.BAD_REQUEST, reason="le paramètre « limit » doit être un entier") from None
    if number < 0:
        raise ParafeError(E.BAD_REQUEST, reason="le paramètre « limit » doit être positif ou nul")
    return number or None


def sms_history(ctx: AppContext, principal: Principal, siren: str, circuit_key: str | None,
                month: str | None, *, status: str | None = None, limit: str | int | None = None) -> list[SmsEntry]:
    """SMS sent for the subscriber's circuits (one circuit when ``circuit_key`` is given), oldest first.

    ``month`` is ``yyyy-MM`` (``00`` = the whole year), ``status`` one of the §2.5.20 filters, ``limit`` 0 = all.
    Admins see the whole subscriber, other users the circuits they have a role on. Raises
    ``SUBSCRIBER_UNKNOWN_OR_FORBIDDEN``, ``CIRCUIT_NOT_FOUND`` and ``BAD_REQUEST`` (date, limit).
    """
    period = _period(month)
    with ctx.db.read() as session:
        subscriber, account = subscriber_account(session, principal, siren)
        stmt = (select(OtpChallenge, Circuit.key, SmsDelivery)
                .outerjoin(Circuit, Circuit.id == OtpChallenge.circuit_id)
                .outerjoin(SmsDelivery, SmsDelivery.challenge_id == OtpChallenge.id)
                .where(OtpChallenge.subscriber_id == subscriber.id, OtpChallenge.channel == "sms"))
        if circuit_key is not None and circuit_key.strip():
            circuit_id = session.scalar(select(Circuit.id).where(
                Circuit.subscriber_id == subscriber.id, Circuit.key == circuit_key.strip()))
            if circuit_id is None:
                raise ParafeError(E.CIRCUIT_NOT_FOUND)
            stmt = stmt.where(OtpChallenge.circuit_id == circuit_id)
        if not account.is_admin:
            stmt = stmt.where(OtpChallenge.circuit_id.in_(select(CircuitRole.circuit_id).where(
                CircuitRole.user_id == account.user_id)))
        if period is not None:
            stmt = stmt.where(OtpChallenge.created_at >= period[0], OtpChallenge.created_at < period[1])
        wanted = (status or "").strip().lower()
        negate = wanted.startswith("not_")
        statuses = _SMS_STATUS.get(wanted[4:] if negate else wanted)
        if statuses is not None:
            column = OtpChallenge.status
            stmt = stmt.where(column.not_in(statuses) if negate else column.in_(statuses))
        stmt = stmt.order_by(OtpChallenge.created_at, OtpChallenge.id)
        count = _limit(limit)
        if count is not None:
            stmt = stmt.limit(count)
        return [_sms_entry(c, key, d) for c, key, d in session.execute(stmt)]


def _sms_entry(challenge: OtpChallenge, circuit_key: str | None, delivery: SmsDelivery | None) -> SmsEntry:
    if delivery is None:
        return SmsEntry(challenge.id, circuit_key, challenge.destination, challenge.created_at, challenge.status)
    return SmsEntry(challenge.id, circuit_key, delivery.recipient, challenge.created_at, challenge.status,
                    provider=delivery.provider, delivery=delivery.status, sent_at=delivery.sent_at,
                    delivered_at=delivery.delivered_at, message_length=delivery.message_length,
                    segments=delivery.segments, encoding=delivery.encoding, error=delivery.error,
                    provider_id=delivery.provider_id)
