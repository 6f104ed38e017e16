"""On-demand circuits (« circuit à la volée », spec §5, §2.5.23 / §2.6.3; DECISIONS D19, G-11, G-12).

A deposit brings its own circuit definition (REST: JSON ``{"type", "steps": [{"step", "members"}]}``; SOAP:
XML ``<circuit><type/><steps><step><type/><members/></step></steps></circuit>``). The service checks it, creates
an ``on_demand`` :class:`~parafe.db.models.Circuit` with its steps, members and roles, then runs the same
deposit checks as every other deposit.

Errors keep the codes of the document's table (§4.4): 100 the caller may not deposit in this siren, 102 the
caller has no account in it, 111 unknown siren, 117 bad circuit type, 118 bad step type, 119 unknown or
invalid member (visa / signature / server-signature members must be users of the subscriber; OTP signature
members may be plain e-mail addresses of outside people, D19), 121 malformed circuit, 122 the depositor is a
member of a visa, signature or OTP step. File refusals keep their own catalogue entries (empty file,
protected PDF, …).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import Circuit, CircuitRole, CircuitStep, StepMember, Subscriber, User
from parafe.domain.circuits import (
    ON_DEMAND_SEARCH_KEY,
    CircuitType,
    StepKind,
    parse_circuit_type,
    parse_on_demand_step,
)
from parafe.domain.emails import is_email
from parafe.domain.errors import E, ParafeError
from parafe.formats.safexml import parse_untrusted
from parafe.services.access.auth import Account, Principal
from parafe.services.access.rights import AGENT, SIGNATAIRE, VALIDEUR
from parafe.services.documents import deposit as documents
from parafe.services.documents.deposit import Deposited, DepositRequest, Upload

log = logging.getLogger(__name__)

ON_DEMAND_KEY_PREFIX = "ondemand-"
MAX_STEPS = 50
MAX_MEMBERS = 50

# Steps whose members act as the subscriber's users and get a role on the circuit.
_ROLE_OF_STEP = {StepKind.VISA: VALIDEUR, StepKind.SIGNATURE: SIGNATAIRE}
# Steps where the depositor may not appear (« L'agent déposant ne peut être signataire ou valideur »).
_PERSON_STEPS = frozenset({StepKind.VISA, StepKind.SIGNATURE, StepKind.OTP_SIGNATURE})


@dataclass(frozen=True)
class OnDemandStep:
    kind: StepKind
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class OnDemandCircuit:
    type: CircuitType
    steps: tuple[OnDemandStep, ...]


@dataclass
class OnDemandRequest:
    """An on-demand deposit as every connector gives it (the circuit already parsed, or its raw JSON)."""

    siren: str
    circuit: OnDemandCircuit | str | bytes
    upload: Upload
    annexes: list[Upload] = field(default_factory=list)
    agents: str | None = None
    comment: str | None = None
    email_destinataire: str | None = None
    email_cc: str | None = None
    pictograms: bytes | None = None
    label: str | None = None


def _members(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[Any] = re.split(r"[;,]", value)
    elif isinstance(value, list):
        items = value
    else:
        raise ParafeError(E.CIRCUIT_DEF_ERROR, detail="members must be a list of e-mail addresses")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ParafeError(E.INVALID_STEP_MEMBER, detail=f"member {item!r} is not an e-mail address")
        email = item.strip().lower()
        if email and email not in out:
            out.append(email)
    if len(out) > MAX_MEMBERS:
        raise ParafeError(E.CIRCUIT_DEF_ERROR, detail=f"more than {MAX_MEMBERS} members in a step")
    return tuple(out)


def circuit_from_mapping(obj: Any) -> OnDemandCircuit:
    """An on-demand circuit from its decoded JSON (REST, §5.2; the step type key is ``step``, ``type`` is
    accepted too). Raises 121 (shape), 117 (type), 118 (step)."""
    if not isinstance(obj, dict):
        raise ParafeError(E.CIRCUIT_DEF_ERROR, detail="the circuit must be a JSON object")
    ctype_raw = obj.get("type")
    steps_raw = obj.get("steps")
    if not isinstance(ctype_raw, str) or not isinstance(steps_raw, list) or not steps_raw:
        raise ParafeError(E.CIRCUIT_DEF_ERROR, detail="'type' (text) and 'steps' (non-empty list) are required")
    ctype = parse_circuit_type(ctype_raw)
    if ctype is None:
        raise ParafeError(E.INVALID_CIRCUIT_TYPE, detail=f"circuit type {ctype_raw!r}")
    if len(steps_raw) > MAX_STEPS:
        raise ParafeError(E.CIRCUIT_DEF_ERROR, detail=f"more than {MAX_STEPS} steps")
    steps: list[OnDemandStep] = []
    for raw in steps_raw:
        if not isinstance(raw, dict):
            raise ParafeError(E.CIRCUIT_DEF_ERROR, detail="each step must be a JSON object")
        name = raw.get("step", raw.get("type"))
        if not isinstance(name, str):
            raise ParafeError(E.CIRCUIT_DEF_ERROR, detail="each step needs a 'step' name")
        kind = parse_on_demand_step(name)
        if kind is None:
            raise ParafeError(E.INVALID_STEP_TYPE, detail=f"step {name!r}")
        steps.append(OnDemandStep(kind, _members(raw.get("members"))))
    return OnDemandCircuit(ctype, tuple(steps))


def parse_circuit_json(text: str | bytes) -> OnDemandCircuit:
    """The REST ``circuit`` field (§5.2). Raises 121 when it is not JSON."""
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ParafeError(E.CIRCUIT_DEF_ERROR, detail=f"circuit is not JSON: {exc}") from None
    return circuit_from_mapping(obj)


def parse_circuit_xml(data: bytes | str) -> OnDemandCircuit:
    """The SOAP ``circuit`` element (§5.1): ``<type>`` (spaces ignored, G-12) and ``<steps><step><type/>
    <members/>…`` where members are repeated ``<members>`` elements and/or comma-separated. Namespaces are
    ignored. Raises 121 (malformed), 117, 118."""
    try:
        root = parse_untrusted(data.encode("utf-8") if isinstance(data, str) else data).getroot()
    except ParafeError as exc:
        raise ParafeError(E.CIRCUIT_DEF_ERROR, detail=exc.developer_message) from None

    def children(element: Any, name: str) -> list[Any]:
        return [c for c in element if isinstance(c.tag, str) and etree.QName(c).localname == name]

    types = children(root, "type")
    steps_el = children(root, "steps")
    step_elements = [s for holder in steps_el for s in children(holder, "step")]
    obj: dict[str, Any] = {
        "type": (types[0].text or "") if types else None,
        "steps": [
            {"step": (children(s, "type")[0].text or "") if children(s, "type") else None,
             "members": [m for el in children(s, "members") for m in re.split(r"[;,]", el.text or "") if m.strip()]}
            for s in step_elements
        ],
    }
    return circuit_from_mapping(obj)


def _account(session: Session, principal: Principal, siren: str) -> tuple[Subscriber, Account]:
    siren = str(siren).strip()
    account = principal.account_for(siren)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.siren == siren))
    if subscriber is None:
        raise ParafeError(E.SUBSCRIBER_NOT_FOUND, detail=f"siren {siren!r}")
    if account is None:
        raise ParafeError(E.UNAUTHORIZED_ACTIONS, detail="no account in this subscriber")
    if not account.is_admin and session.scalar(select(CircuitRole.circuit_id).where(
            CircuitRole.user_id == account.user_id, CircuitRole.role == AGENT).limit(1)) is None:
        raise ParafeError(E.UNAUTHORIZED_DEPOSIT, detail="the caller is not an agent of this subscriber")
    return subscriber, account


def _users_by_email(session: Session, subscriber_id: int, emails: set[str]) -> dict[str, User]:
    if not emails:
        return {}
    users = session.scalars(select(User).where(
        User.subscriber_id == subscriber_id, User.active.is_(True), User.email.in_(emails))).all()
    return {u.email.lower(): u for u in users}


@dataclass
class _Resolved:
    steps: list[tuple[StepKind, list[tuple[int | None, str]]]]
    agents: list[int]


def _resolve(session: Session, subscriber: Subscriber, account: Account, circuit: OnDemandCircuit,
             agents: str | None) -> _Resolved:
    agent_emails = [a.strip().lower() for a in re.split(r"[;,]", agents or "") if a.strip()]
    for email in [m for s in circuit.steps for m in s.members] + agent_emails:
        if not is_email(email):
            raise ParafeError(E.INVALID_STEP_MEMBER, detail=f"{email!r} is not an e-mail address")
    wanted = {m for s in circuit.steps for m in s.members} | set(agent_emails)
    users = _users_by_email(session, subscriber.id, wanted)
    depositor = account.email.lower()
    steps: list[tuple[StepKind, list[tuple[int | None, str]]]] = []
    for step in circuit.steps:
        if step.kind in (StepKind.VISA, StepKind.SIGNATURE) and not step.members:
            raise ParafeError(E.CIRCUIT_DEF_ERROR, detail=f"a {step.kind.value} step needs members")
        members: list[tuple[int | None, str]] = []
        for email in step.members:
            if step.kind in _PERSON_STEPS and email == depositor:
                raise ParafeError(E.INVALID_STEP_MEMBER_AGENT, detail=email)
            user = users.get(email)
            if step.kind == StepKind.OTP_SIGNATURE:
                pass  # D19: a plain e-mail address of an outside person is enough
            elif user is None:
                raise ParafeError(E.INVALID_STEP_MEMBER, detail=f"no user {email!r} in this subscriber")
            members.append((user.id if user else None, email))
        steps.append((step.kind, members))
    agent_ids: list[int] = []
    for email in agent_emails:
        user = users.get(email)
        if user is None:
            raise ParafeError(E.INVALID_STEP_MEMBER, detail=f"agent {email!r} is not a user of this subscriber")
        agent_ids.append(user.id)
    return _Resolved(steps, agent_ids)


def _circuit_maker(subscriber_id: int, account: Account, ctype: CircuitType,
                   resolved: _Resolved) -> Callable[[Session], Circuit]:
    """Creates the on-demand circuit, its steps, members and roles inside the deposit's transaction."""

    def make(session: Session) -> Circuit:
        key = f"{ON_DEMAND_KEY_PREFIX}{secrets.token_hex(8)}"
        circuit = Circuit(subscriber_id=subscriber_id, key=key, name="Circuit à la demande", type=ctype.value,
                          pes_pj=False, on_demand=True, settings={"created_by": account.user_id})
        session.add(circuit)
        session.flush()
        kinds = [kind for kind, _ in resolved.steps]
        if ctype == CircuitType.HELIOS_AVEC_TELETRANSMISSION:
            kinds.append(StepKind.HELIOS)
        kinds.append(StepKind.FILING)
        members_of = dict(enumerate(m for _, m in resolved.steps))
        roles: set[tuple[int, str]] = {(account.user_id, AGENT)} | {(uid, AGENT) for uid in resolved.agents}
        for position, kind in enumerate(kinds):
            step = CircuitStep(circuit_id=circuit.id, position=position, kind=kind.value, config={})
            for user_id, email in members_of.get(position, []):
                step.members.append(StepMember(user_id=user_id, email=email))
                if user_id is not None and kind in _ROLE_OF_STEP:
                    roles.add((user_id, _ROLE_OF_STEP[kind]))
            session.add(step)
        for user_id, role in sorted(roles):
            session.add(CircuitRole(circuit_id=circuit.id, user_id=user_id, role=role))
        session.flush()
        return circuit

    return make


def deposit_on_demand(ctx: AppContext, principal: Principal, req: OnDemandRequest) -> Deposited:
    """Check an on-demand circuit, create it and deposit the document into it; returns the new document."""
    with ctx.db.read() as session:
        subscriber, account = _account(session, principal, req.siren)
        circuit = req.circuit if isinstance(req.circuit, OnDemandCircuit) else parse_circuit_json(req.circuit)
        resolved = _resolve(session, subscriber, account, circuit, req.agents)
        subscriber_id = subscriber.id
    dep_req = DepositRequest(
        siren=req.siren, circuit=ON_DEMAND_SEARCH_KEY, upload=req.upload, label=req.label, comment=req.comment,
        email_destinataire=req.email_destinataire, email_cc=req.email_cc, source="ws", annexes=list(req.annexes),
        pictograms=req.pictograms)
    template = Circuit(type=circuit.type.value, pes_pj=False, metadata_model=None, on_demand=True)
    return documents.deposit_into(ctx, account, template, dep_req,
                                  make_circuit=_circuit_maker(subscriber_id, account, circuit.type, resolved))
