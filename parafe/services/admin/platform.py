"""Administration of subscribers, users, certificates, groups, circuits and metadata models.

Used by the operators' command line (``parafe admin …``) and, later, by the portal's admin pages (a subscriber
admin acting on their own subscriber). Every function is one transaction and raises catalogue errors
(codes 200–219) in French. Circuits can be declared in a TOML or JSON file (:func:`apply_config`); the same
file applied twice changes nothing.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import (
    Circuit,
    CircuitRole,
    CircuitStep,
    Document,
    Group,
    GroupMember,
    StepMember,
    Subscriber,
    User,
    UserCertificate,
)
from parafe.domain.circuits import StepKind, parse_circuit_type
from parafe.domain.emails import is_email
from parafe.domain.errors import E, ParafeError
from parafe.formats.metadata import MetadataField
from parafe.security.pki import fingerprint_sha256
from parafe.services.access.auth import hash_password

_SIREN = re.compile(r"^\d{9}$")
_STEP_ROLE = {StepKind.VISA: "valideur", StepKind.SIGNATURE: "signataire"}


def check_siren(siren: str) -> str:
    siren = str(siren).strip()
    if not _SIREN.match(siren):
        raise ParafeError(E.ADMIN_SIREN_INVALID, siren=siren)
    return siren


def check_email(email: str) -> str:
    email = email.strip().lower()
    if not is_email(email):
        raise ParafeError(E.ADMIN_EMAIL_INVALID, email=email)
    return email


def _subscriber(session: Session, siren: str) -> Subscriber:
    sub = session.scalar(select(Subscriber).where(Subscriber.siren == check_siren(siren)))
    if sub is None:
        raise ParafeError(E.ADMIN_SUBSCRIBER_UNKNOWN, siren=siren)
    return sub


def _user(session: Session, sub: Subscriber, email: str) -> User:
    user = session.scalar(select(User).where(User.subscriber_id == sub.id, User.email == check_email(email)))
    if user is None:
        raise ParafeError(E.ADMIN_USER_UNKNOWN, email=email)
    return user


# --- subscribers ---------------------------------------------------------------------------------------

def create_subscriber(ctx: AppContext, siren: str, name: str) -> None:
    siren = check_siren(siren)
    with ctx.db.write() as session:
        if session.scalar(select(Subscriber.id).where(Subscriber.siren == siren)) is not None:
            raise ParafeError(E.ADMIN_SUBSCRIBER_EXISTS, siren=siren)
        session.add(Subscriber(siren=siren, name=name.strip() or siren))


def list_subscribers(ctx: AppContext) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        rows = session.execute(select(Subscriber.siren, Subscriber.name).order_by(Subscriber.siren)).all()
        return [{"siren": siren, "name": name} for siren, name in rows]


# --- users and certificates ----------------------------------------------------------------------------

@dataclass
class UserSpec:
    email: str
    firstname: str = ""
    lastname: str = ""
    admin: bool = False
    authentication_type: str = "CERTIFICAT"
    password: str | None = None
    phone: str | None = None
    quality: str | None = None
    groups: list[str] = field(default_factory=list)


def _apply_user(session: Session, user: User, spec: UserSpec) -> None:
    auth = spec.authentication_type.upper()
    if auth not in ("CERTIFICAT", "BASIC"):
        raise ParafeError(E.ADMIN_CIRCUIT_SPEC_INVALID, reason=f"type d'authentification inconnu « {auth} »")
    if auth == "BASIC" and not user.password_hash and (not spec.password or len(spec.password) < 12):
        raise ParafeError(E.ADMIN_PASSWORD_REQUIRED)
    if spec.password is not None:
        if len(spec.password) < 12:
            raise ParafeError(E.ADMIN_PASSWORD_REQUIRED)
        user.password_hash = hash_password(spec.password)
    user.firstname, user.lastname = spec.firstname or user.firstname, spec.lastname or user.lastname
    user.is_admin, user.authentication_type = spec.admin, auth
    user.phone, user.quality = spec.phone or user.phone, spec.quality or user.quality


def create_user(ctx: AppContext, siren: str, spec: UserSpec) -> None:
    email = check_email(spec.email)
    with ctx.db.write() as session:
        sub = _subscriber(session, siren)
        if session.scalar(select(User.id).where(User.subscriber_id == sub.id, User.email == email)) is not None:
            raise ParafeError(E.ADMIN_USER_EXISTS, email=email)
        user = User(subscriber_id=sub.id, email=email)
        _apply_user(session, user, spec)
        session.add(user)
        session.flush()
        _set_groups(session, sub, user, spec.groups)


def update_user(ctx: AppContext, siren: str, spec: UserSpec) -> None:
    with ctx.db.write() as session:
        sub = _subscriber(session, siren)
        user = _user(session, sub, spec.email)
        _apply_user(session, user, spec)
        _set_groups(session, sub, user, spec.groups)


def delete_user(ctx: AppContext, siren: str, email: str) -> None:
    with ctx.db.write() as session:
        sub = _subscriber(session, siren)
        session.delete(_user(session, sub, email))


def list_users(ctx: AppContext, siren: str) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        sub = _subscriber(session, siren)
        users = session.scalars(select(User).where(User.subscriber_id == sub.id).order_by(User.email)).all()
        return [{"email": u.email, "firstname": u.firstname, "lastname": u.lastname, "admin": u.is_admin,
                 "authenticationType": u.authentication_type,
                 "certificates": [c.fingerprint for c in u.certificates]} for u in users]


def _load_certificate(data: bytes) -> x509.Certificate:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise ParafeError(E.ADMIN_CERTIFICATE_INVALID) from None


def add_certificate(ctx: AppContext, siren: str, email: str, data: bytes) -> str:
    """Bind a client certificate to a user; returns its SHA-256 fingerprint."""
    cert = _load_certificate(data)
    fingerprint = fingerprint_sha256(cert)
    with ctx.db.write() as session:
        user = _user(session, _subscriber(session, siren), email)
        if not any(c.fingerprint == fingerprint for c in user.certificates):
            user.certificates.append(UserCertificate(
                fingerprint=fingerprint, subject=cert.subject.rfc4514_string(), not_after=cert.not_valid_after_utc,
                pem=cert.public_bytes(encoding=_pem()).decode("ascii")))
    return fingerprint


def _pem() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM


def remove_certificate(ctx: AppContext, siren: str, email: str, fingerprint: str) -> None:
    with ctx.db.write() as session:
        user = _user(session, _subscriber(session, siren), email)
        user.certificates = [c for c in user.certificates if c.fingerprint != fingerprint.lower().replace(":", "")]


# --- groups --------------------------------------------------------------------------------------------

def _group(session: Session, sub: Subscriber, name: str, *, create: bool = False) -> Group:
    group = session.scalar(select(Group).where(Group.subscriber_id == sub.id, Group.name == name))
    if group is None:
        if not create:
            raise ParafeError(E.ADMIN_GROUP_UNKNOWN, name=name)
        group = Group(subscriber_id=sub.id, name=name)
        session.add(group)
        session.flush()
    return group


def _set_groups(session: Session, sub: Subscriber, user: User, names: Iterable[str]) -> None:
    names = [n.strip() for n in names if n.strip()]
    if not names:
        return
    session.execute(delete(GroupMember).where(GroupMember.user_id == user.id))
    for name in names:
        session.add(GroupMember(group_id=_group(session, sub, name, create=True).id, user_id=user.id))


def create_group(ctx: AppContext, siren: str, name: str, members: Iterable[str] = ()) -> None:
    with ctx.db.write() as session:
        sub = _subscriber(session, siren)
        group = _group(session, sub, name.strip(), create=True)
        for email in members:
            user = _user(session, sub, email)
            if session.get(GroupMember, (group.id, user.id)) is None:
                session.add(GroupMember(group_id=group.id, user_id=user.id))


# --- circuits ------------------------------------------------------------------------------------------

def _parse_metadata_model(raw: Any) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ParafeError(E.ADMIN_CIRCUIT_SPEC_INVALID, reason="« metadata » doit être une liste")
    model = []
    for item in raw:
        try:
            fld = MetadataField(**item)
        except TypeError as exc:
            raise ParafeError(E.ADMIN_CIRCUIT_SPEC_INVALID, reason=f"métadonnée invalide : {item}") from exc
        if fld.kind not in ("text", "numeric", "date", "regex"):
            raise ParafeError(E.ADMIN_CIRCUIT_SPEC_INVALID, reason=f"format de métadonnée inconnu « {fld.kind} »")
        model.append({"name": fld.name, "kind": fld.kind, "pattern": fld.pattern, "required": fld.required})
    return model


def _member(session: Session, sub: Subscriber, ref: str, kind: StepKind) -> StepMember:
    ref = ref.strip()
    if ref.lower().startswith("group:"):
        return StepMember(group_id=_group(session, sub, ref[6:].strip()).id)
    email = check_email(ref)
    user = session.scalar(select(User).where(User.subscriber_id == sub.id, User.email == email))
    if user is None:
        if kind == StepKind.OTP_SIGNATURE:
            return StepMember(email=email)  # DECISIONS D19: OTP signers are people outside the subscriber
        raise ParafeError(E.ADMIN_USER_UNKNOWN, email=email)
    return StepMember(user_id=user.id)


def define_circuit(ctx: AppContext, siren: str, spec: dict[str, Any]) -> str:
    """Create or replace a circuit (steps, members, roles, metadata model) from a dict; returns its key."""
    key = str(spec.get("key") or "").strip()
    if not key or len(key) > 255 or "/" in key:
        raise ParafeError(E.ADMIN_CIRCUIT_SPEC_INVALID, reason="« key » (identifiant du circuit) absent ou invalide")
    ctype = parse_circuit_type(str(spec.get("type", "")))
    if ctype is None:
        raise ParafeError(E.ADMIN_CIRCUIT_SPEC_INVALID, reason=f"type de circuit inconnu « {spec.get('type')} »")
    steps = spec.get("steps") or []
    if not isinstance(steps, list) or not steps:
        raise ParafeError(E.ADMIN_CIRCUIT_SPEC_INVALID, reason=f"le circuit {key} n'a aucune étape")
    with ctx.db.write() as session:
        sub = _subscriber(session, siren)
        circuit = session.scalar(select(Circuit).where(Circuit.subscriber_id == sub.id, Circuit.key == key))
        if circuit is None:
            circuit = Circuit(subscriber_id=sub.id, key=key, name=key, type=ctype.value)
            session.add(circuit)
            session.flush()
        circuit.name = str(spec.get("name") or key)
        circuit.type = ctype.value
        circuit.pes_pj = bool(spec.get("pes_pj", False))
        circuit.settings = dict(spec.get("settings") or {})
        circuit.metadata_model = _parse_metadata_model(spec.get("metadata"))
        session.execute(delete(CircuitStep).where(CircuitStep.circuit_id == circuit.id))
        session.execute(delete(CircuitRole).where(CircuitRole.circuit_id == circuit.id))
        roles: set[tuple[int, str]] = set()
        for position, raw in enumerate(steps):
            if not isinstance(raw, dict):
                raise ParafeError(E.ADMIN_CIRCUIT_SPEC_INVALID, reason=f"étape {position + 1} invalide")
            try:
                kind = StepKind(str(raw.get("kind", "")).strip().lower())
            except ValueError:
                raise ParafeError(E.ADMIN_CIRCUIT_SPEC_INVALID,
                                  reason=f"type d'étape inconnu « {raw.get('kind')} »") from None
            step = CircuitStep(circuit_id=circuit.id, position=position, kind=kind.value,
                               config=dict(raw.get("config") or {}))
            for ref in raw.get("members") or []:
                member = _member(session, sub, str(ref), kind)
                step.members.append(member)
                if member.user_id and kind in _STEP_ROLE:
                    roles.add((member.user_id, _STEP_ROLE[kind]))
                if member.group_id and kind in _STEP_ROLE:
                    for (uid,) in session.execute(select(GroupMember.user_id).where(
                            GroupMember.group_id == member.group_id)):
                        roles.add((uid, _STEP_ROLE[kind]))
            session.add(step)
        for email in spec.get("agents") or []:
            roles.add((_user(session, sub, email).id, "agent"))
        for user_id, role in sorted(roles):
            session.add(CircuitRole(circuit_id=circuit.id, user_id=user_id, role=role))
    return key


def delete_circuit(ctx: AppContext, siren: str, key: str) -> None:
    with ctx.db.write() as session:
        sub = _subscriber(session, siren)
        circuit = session.scalar(select(Circuit).where(Circuit.subscriber_id == sub.id, Circuit.key == key))
        if circuit is None:
            raise ParafeError(E.ADMIN_CIRCUIT_UNKNOWN, key=key)
        live = session.scalar(select(func.count()).select_from(Document).where(
            Document.circuit_id == circuit.id, Document.deleted_at.is_(None))) or 0
        if live:
            raise ParafeError(E.ADMIN_CIRCUIT_IN_USE, key=key)
        session.delete(circuit)


def set_metadata_model(ctx: AppContext, siren: str, key: str, fields: list[dict[str, Any]] | None) -> None:
    model = _parse_metadata_model(fields)
    with ctx.db.write() as session:
        sub = _subscriber(session, siren)
        circuit = session.scalar(select(Circuit).where(Circuit.subscriber_id == sub.id, Circuit.key == key))
        if circuit is None:
            raise ParafeError(E.ADMIN_CIRCUIT_UNKNOWN, key=key)
        circuit.metadata_model = model


def list_circuits(ctx: AppContext, siren: str) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        sub = _subscriber(session, siren)
        circuits = session.scalars(select(Circuit).where(
            Circuit.subscriber_id == sub.id, Circuit.on_demand.is_(False)).order_by(Circuit.key)).all()
        return [{"key": c.key, "name": c.name, "type": c.type,
                 "steps": [s.kind for s in c.steps]} for c in circuits]


# --- configuration files -------------------------------------------------------------------------------

def load_config_file(path: Path) -> dict[str, Any]:
    """A TOML (``.toml``) or JSON file describing subscribers, users, groups and circuits."""
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8")) if path.suffix.lower() == ".toml" else json.loads(raw)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ParafeError(E.ADMIN_FILE_UNREADABLE, reason=str(exc)) from None
    if not isinstance(data, dict):
        raise ParafeError(E.ADMIN_FILE_UNREADABLE, reason="un objet (table) est attendu à la racine")
    return data


def apply_config(ctx: AppContext, data: dict[str, Any]) -> list[str]:
    """Apply a configuration (idempotent); returns a French line per change for the operator."""
    done: list[str] = []
    siren = check_siren(str(data.get("siren", "")))
    with ctx.db.read() as session:
        exists = session.scalar(select(Subscriber.id).where(Subscriber.siren == siren)) is not None
    if not exists:
        create_subscriber(ctx, siren, str(data.get("name") or siren))
        done.append(f"abonné {siren} créé")
    for raw in data.get("users") or []:
        spec = UserSpec(**{k: v for k, v in raw.items() if k in UserSpec.__dataclass_fields__})
        try:
            create_user(ctx, siren, spec)
            done.append(f"utilisateur {spec.email} créé")
        except ParafeError as err:
            if err.error is not E.ADMIN_USER_EXISTS:
                raise
            update_user(ctx, siren, spec)
            done.append(f"utilisateur {spec.email} mis à jour")
        for cert_path in raw.get("certificates") or []:
            fp = add_certificate(ctx, siren, spec.email, Path(cert_path).read_bytes())
            done.append(f"certificat {fp[:16]}… lié à {spec.email}")
    for raw in data.get("groups") or []:
        create_group(ctx, siren, str(raw["name"]), raw.get("members") or [])
        done.append(f"groupe {raw['name']} à jour")
    for raw in data.get("circuits") or []:
        key = define_circuit(ctx, siren, raw)
        done.append(f"circuit {key} à jour")
    return done
