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

Speed: the SQL is written for the search indexes of ``parafe.db.models`` (migration 0007); docs/search.md
gives the shapes, the indexes, their plans and the figures of ``bench/search.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, bindparam, func, select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import Circuit, CircuitRole, Document, HistoryEntry, Label, MetadataValue, Subscriber, User
from parafe.domain.circuits import ON_DEMAND_SEARCH_KEY
from parafe.domain.errors import E, ParafeError
from parafe.domain.paris_time import PARIS
from parafe.domain.states import State, states_for_search_code
from parafe.services.access.auth import Principal
from parafe.services.access.rights import subscriber_account, visible_within

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


def _constants(values: Iterable[str]) -> BindParameter[list[str]]:
    """State values rendered inline (they come from the state table, never from the caller): the planner then
    sees them even in a prepared statement's generic plan, and the partial history indexes apply."""
    return bindparam("states", sorted(values), expanding=True, literal_execute=True, unique=True)


def _user_ids(session: Session, email: str) -> list[int]:
    """Accounts with this e-mail (any case), resolved before the search so that the planner sees the ids."""
    return [int(i) for i in session.scalars(select(User.id).where(func.lower(User.email) == email.lower()))]


def _history_ids(session: Session, states: tuple[str, ...], by: str | None, after: str | None,
                 before: str | None, name: str) -> Select[Any] | None:
    """Ids of the documents with a history entry in ``states`` by that user / in those days (None: no criterion).

    An uncorrelated ``IN (SELECT document_id …)``: a semi-join on PostgreSQL, an ephemeral index of ids that
    drives the rowid lookups on SQLite; ``ix_history_search`` (user_id, state, created_at, document_id) or
    ``ix_history_search_date`` (state, created_at, document_id) answer it from the index alone."""
    start, end = _bounds(after, before, name)
    if not by and start is None and end is None:
        return None
    conds: list[ColumnElement[bool]] = [HistoryEntry.state.in_(_constants(states))]
    if by:
        conds.append(HistoryEntry.user_id.in_(_user_ids(session, by)))
    if start is not None:
        conds.append(HistoryEntry.created_at >= start)
    if end is not None:
        conds.append(HistoryEntry.created_at < end)
    return select(HistoryEntry.document_id).where(*conds)


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


def _conditions(session: Session, principal: Principal, c: SearchCriteria) -> list[ColumnElement[bool]]:
    """The WHERE of the search on ``documents``, with the checks that raise before any search runs.

    Shapes chosen for the indexes (docs/search.md): every condition is a plain column comparison, people are
    resolved to ids first, a named circuit makes the visibility filter redundant (the role was just checked),
    history and metadata criteria are uncorrelated ``id IN (SELECT document_id …)``."""
    subscriber, account = subscriber_account(session, principal, c.siren)
    conds: list[ColumnElement[bool]] = [Document.subscriber_id == subscriber.id, Document.deleted_at.is_(None)]
    visible_everywhere = account.is_admin
    if c.circuit:
        if c.circuit == ON_DEMAND_SEARCH_KEY:
            conds.append(Document.circuit_id.in_(select(Circuit.id).where(
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
            conds.append(Document.circuit_id == found)
            visible_everywhere = True  # every document of a circuit the caller has a role on
    if not visible_everywhere:
        conds.append(visible_within(account, session))
    if c.label:
        conds.append(Document.label_id.in_(select(Label.id).where(Label.name == c.label)))
    if c.filename:
        conds.append(Document.name == c.filename)
    if c.state:
        states = states_for_search_code(c.state)
        if states is None:
            raise ParafeError(E.BAD_REQUEST, reason=f"état de recherche inconnu : {c.state}")
        conds.append(Document.state.in_(_constants(s.value for s in states)))
    if c.upload_by:
        conds.append(Document.uploader_id.in_(_user_ids(session, c.upload_by)))
    start, end = _bounds(c.upload_after, c.upload_before, "upload")
    if start is not None:
        conds.append(Document.created_at >= start)
    if end is not None:
        conds.append(Document.created_at < end)
    for sub in (_history_ids(session, VISA_STATES, c.validate_by, c.validate_after, c.validate_before, "validate"),
                _history_ids(session, SIGN_STATES, c.sign_by, c.sign_after, c.sign_before, "sign")):
        if sub is not None:
            conds.append(Document.id.in_(sub))
    for key, value in c.meta.items():
        conds.append(Document.id.in_(select(MetadataValue.document_id).where(
            MetadataValue.name == key, MetadataValue.value == value)))
    return conds


def document_conditions(session: Session, principal: Principal, c: SearchCriteria) -> list[ColumnElement[bool]]:
    """The WHERE of a search (the caller's rights and the criteria), for the other lists of documents
    (``listRemainingSignedDocs``, :mod:`parafe.services.documents.signed_fetches`); raises the search's errors."""
    return _conditions(session, principal, c)


def search(ctx: AppContext, principal: Principal, criteria: SearchCriteria) -> list[int]:
    """Ids of the matching documents, ascending (at most 10,000).

    Raises ``SUBSCRIBER_UNKNOWN_OR_FORBIDDEN`` (no account in the siren), ``CIRCUIT_NOT_FOUND``,
    ``NO_PERMISSION`` (a named circuit the caller has no role on) and ``BAD_REQUEST`` (bad date, unknown
    state code, bad ``meta``).
    """
    with ctx.db.read() as session:
        stmt = select(Document.id).where(*_conditions(session, principal, criteria))
        return [int(i) for i in session.scalars(stmt.order_by(Document.id).limit(MAX_RESULTS))]


def search_details(ctx: AppContext, principal: Principal, criteria: SearchCriteria) -> list[SearchHit]:
    """As :func:`search`, with the details of each document (SOAP ``searchDetails``)."""
    with ctx.db.read() as session:
        # The search itself with the detail columns and their joins (no ``id IN (search)`` around it, which
        # PostgreSQL answers with a sequential scan of the whole table; no ORM objects).
        stmt = (select(Document.id, Document.name, Document.size, Label.name, Circuit.name, Subscriber.name,
                       Document.created_at)
                .join(Label, Label.id == Document.label_id).join(Circuit, Circuit.id == Document.circuit_id)
                .join(Subscriber, Subscriber.id == Document.subscriber_id)
                .where(*_conditions(session, principal, criteria)).order_by(Document.id).limit(MAX_RESULTS))
        return [SearchHit(*row) for row in session.execute(stmt)]
