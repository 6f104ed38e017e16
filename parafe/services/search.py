"""Document search, shared by every connector (spec §3.3.22 SOAP ``search`` / ``searchDetails``, §4.3.20 REST
``documents/search``; DECISIONS D9, G-03, G-15, G-17).

Criteria: ``siren`` (required), ``circuit`` (REST) or ``circuitId`` (SOAP), ``label``, ``filename``, ``state``
(a search code of §2.2, any case, matching the **current** state), ``uploadBy`` / ``uploadAfter`` /
``uploadBefore``, ``validateBy`` / ``validateAfter`` / ``validateBefore`` (a visa approved by that user / at
that date), ``signBy`` / ``signAfter`` / ``signBefore`` (a signature by that user / at that date), ``meta``
(every key/value must match exactly). Dates are ``DD/MM/YYYY``, calendar days in Europe/Paris, both bounds
inclusive. The circuit key ``circuit-a-la-volee`` stands for every on-demand circuit.

Who: subscriber admins search the whole subscriber; other users only the circuits they have a role on (and
the documents they deposited); naming a circuit they have no role on is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import aliased

from parafe.db.models import Circuit, CircuitRole, Document, HistoryEntry, Label, MetadataValue, Subscriber, User
from parafe.domain.deposit import PARIS
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import State, states_for_search_code
from parafe.services.auth import Principal
from parafe.services.context import AppContext
from parafe.services.ondemand import ON_DEMAND_SEARCH_KEY
from parafe.services.rights import subscriber_account

MAX_RESULTS = 10_000
TEXT_LIMIT = 255

VISA_STATES = (State.APPROVED.value,)
SIGN_STATES = (State.SIGNED.value, State.OTP_SIGNED.value)

# Wire names (REST and SOAP) of each criterion; ``validateBeforex`` is the spec example's typo (§2.6.20).
_ALIASES: dict[str, tuple[str, ...]] = {
    "siren": ("siren", "subscriberId"),
    "circuit": ("circuit", "circuitId", "circuit_id"),
    "label": ("label",),
    "filename": ("filename", "fileName"),
    "state": ("state",),
    "upload_by": ("uploadBy",),
    "upload_after": ("uploadAfter",),
    "upload_before": ("uploadBefore",),
    "validate_by": ("validateBy",),
    "validate_after": ("validateAfter",),
    "validate_before": ("validateBefore", "validateBeforex"),
    "sign_by": ("signBy",),
    "sign_after": ("signAfter",),
    "sign_before": ("signBefore",),
}


@dataclass
class SearchCriteria:
    siren: str
    circuit: str | None = None
    label: str | None = None
    filename: str | None = None
    state: str | None = None
    upload_by: str | None = None
    upload_after: str | None = None
    upload_before: str | None = None
    validate_by: str | None = None
    validate_after: str | None = None
    validate_before: str | None = None
    sign_by: str | None = None
    sign_after: str | None = None
    sign_before: str | None = None
    meta: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, values: dict[str, Any]) -> SearchCriteria:
        """Criteria from wire names (REST JSON body or query, SOAP children). Numbers are accepted for text
        values (``"siren": 123456789``); unknown names are ignored; ``meta`` is an object of key → value, or
        a list of ``{key, value}`` entries (the SOAP ``mapWrapper``)."""
        lowered = {str(k).lower(): v for k, v in values.items()}
        kwargs: dict[str, Any] = {}
        for attr, names in _ALIASES.items():
            for name in names:
                if name.lower() in lowered and lowered[name.lower()] not in (None, ""):
                    kwargs[attr] = _text(lowered[name.lower()], name)
                    break
        if "siren" not in kwargs:
            raise ParafeError(E.BAD_REQUEST, reason="le critère « siren » est obligatoire")
        return cls(meta=_meta(lowered.get("meta")), **kwargs)


def _text(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ParafeError(E.BAD_REQUEST, reason=f"le critère « {name} » doit être un texte")
    text = str(value).strip()
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise ParafeError(E.BAD_REQUEST, reason=f"le critère « {name} » contient un caractère de contrôle")
    if len(text) > TEXT_LIMIT:
        raise ParafeError(E.BAD_REQUEST, reason=f"le critère « {name} » ne doit pas excéder 255 caractères")
    return text


def _meta(value: Any) -> dict[str, str]:
    if value in (None, "", {}):
        return {}
    if isinstance(value, dict) and set(value) == {"parameters"}:
        value = value["parameters"]
    if isinstance(value, dict) and set(value) == {"entry"}:
        value = value["entry"]
    if isinstance(value, list):
        pairs: dict[str, str] = {}
        for item in value:
            if not isinstance(item, dict) or "key" not in item:
                raise ParafeError(E.BAD_REQUEST, reason="le critère « meta » est mal formé")
            pairs[_text(item["key"], "meta")] = _text(item.get("value") if item.get("value") is not None else "",
                                                       "meta")
        return pairs
    if not isinstance(value, dict):
        raise ParafeError(E.BAD_REQUEST, reason="le critère « meta » doit être un objet JSON")
    return {_text(k, "meta"): _text(v if v is not None else "", "meta") for k, v in value.items()}


def _day(value: str, name: str) -> date:
    try:
        return datetime.strptime(value.strip(), "%d/%m/%Y").date()
    except ValueError:
        raise ParafeError(E.BAD_REQUEST, reason=f"le critère « {name} » doit être une date JJ/MM/AAAA") from None


def _bounds(after: str | None, before: str | None, name: str) -> tuple[datetime | None, datetime | None]:
    """[start of ``after``, start of the day after ``before``) in UTC, days taken in Europe/Paris."""
    start = end = None
    if after:
        start = datetime.combine(_day(after, f"{name}After"), time(), PARIS).astimezone(UTC)
    if before:
        end = datetime.combine(_day(before, f"{name}Before") + timedelta(days=1), time(), PARIS).astimezone(UTC)
    return start, end


def _history_filter(stmt: Select[Any], states: tuple[str, ...], by: str | None, after: str | None,
                    before: str | None, name: str) -> Select[Any]:
    start, end = _bounds(after, before, name)
    if not by and start is None and end is None:
        return stmt
    entry = aliased(HistoryEntry)
    conds = [entry.document_id == Document.id, entry.state.in_(states)]
    if by:
        actor = aliased(User)
        conds.append(entry.user_id.in_(select(actor.id).where(func.lower(actor.email) == by.lower())))
    if start is not None:
        conds.append(entry.created_at >= start)
    if end is not None:
        conds.append(entry.created_at < end)
    return stmt.where(exists().where(and_(*conds)))


@dataclass(frozen=True)
class SearchHit:
    """One result with the fields of SOAP ``searchDetails`` (``document`` of the WSDL)."""

    doc_id: int
    doc_name: str
    doc_size: int
    doc_label: str
    circuit_name: str
    subscriber_name: str
    deposit_date: datetime


def _query(ctx: AppContext, principal: Principal, c: SearchCriteria) -> Select[Any]:
    with ctx.db.read() as session:
        subscriber, account = subscriber_account(session, principal, c.siren)
        stmt = select(Document.id).where(Document.subscriber_id == subscriber.id, Document.deleted_at.is_(None))
        role_circuits = select(CircuitRole.circuit_id).where(CircuitRole.user_id == account.user_id)
        if c.circuit:
            if c.circuit == ON_DEMAND_SEARCH_KEY:
                circuit_ids = list(session.scalars(select(Circuit.id).where(
                    Circuit.subscriber_id == subscriber.id, Circuit.on_demand.is_(True))))
            else:
                found = session.scalar(select(Circuit.id).where(
                    Circuit.subscriber_id == subscriber.id, Circuit.key == c.circuit))
                if found is None:
                    raise ParafeError(E.CIRCUIT_NOT_FOUND, detail=f"circuit {c.circuit!r}")
                if not account.is_admin and session.scalar(
                        select(CircuitRole.circuit_id).where(CircuitRole.user_id == account.user_id,
                                                             CircuitRole.circuit_id == found).limit(1)) is None:
                    raise ParafeError(E.NO_PERMISSION, detail="no role on this circuit")
                circuit_ids = [found]
            stmt = stmt.where(Document.circuit_id.in_(circuit_ids))
        if not account.is_admin:
            stmt = stmt.where(or_(Document.circuit_id.in_(role_circuits), Document.uploader_id == account.user_id))
    if c.label:
        stmt = stmt.where(Document.label_id.in_(select(Label.id).where(Label.name == c.label)))
    if c.filename:
        stmt = stmt.where(Document.name == c.filename)
    if c.state:
        states = states_for_search_code(c.state)
        if states is None:
            raise ParafeError(E.BAD_REQUEST, reason=f"état de recherche inconnu : {c.state}")
        stmt = stmt.where(Document.state.in_(sorted(s.value for s in states)))
    if c.upload_by:
        stmt = stmt.where(Document.uploader_id.in_(
            select(User.id).where(func.lower(User.email) == c.upload_by.lower())))
    start, end = _bounds(c.upload_after, c.upload_before, "upload")
    if start is not None:
        stmt = stmt.where(Document.created_at >= start)
    if end is not None:
        stmt = stmt.where(Document.created_at < end)
    stmt = _history_filter(stmt, VISA_STATES, c.validate_by, c.validate_after, c.validate_before, "validate")
    stmt = _history_filter(stmt, SIGN_STATES, c.sign_by, c.sign_after, c.sign_before, "sign")
    for key, value in c.meta.items():
        stmt = stmt.where(exists().where(
            MetadataValue.document_id == Document.id, MetadataValue.name == key, MetadataValue.value == value))
    return stmt.order_by(Document.id).limit(MAX_RESULTS)


def search(ctx: AppContext, principal: Principal, criteria: SearchCriteria) -> list[int]:
    """Ids of the matching documents, ascending (at most 10,000).

    Raises ``SUBSCRIBER_UNKNOWN_OR_FORBIDDEN`` (no account in the siren), ``CIRCUIT_NOT_FOUND``,
    ``NO_PERMISSION`` (a named circuit the caller has no role on) and ``BAD_REQUEST`` (bad date, unknown
    state code, bad ``meta``).
    """
    stmt = _query(ctx, principal, criteria)
    with ctx.db.read() as session:
        return [int(i) for i in session.scalars(stmt)]


def search_details(ctx: AppContext, principal: Principal, criteria: SearchCriteria) -> list[SearchHit]:
    """As :func:`search`, with the details of each document (SOAP ``searchDetails``)."""
    ids = _query(ctx, principal, criteria).subquery()
    stmt = (select(Document, Label.name, Circuit.name, Subscriber.name)
            .join(Label, Label.id == Document.label_id).join(Circuit, Circuit.id == Document.circuit_id)
            .join(Subscriber, Subscriber.id == Document.subscriber_id)
            .where(Document.id.in_(select(ids.c.id))).order_by(Document.id))
    with ctx.db.read() as session:
        return [SearchHit(d.id, d.name, d.size, label_name, circuit_name, sub_name, d.created_at)
                for d, label_name, circuit_name, sub_name in session.execute(stmt)]
