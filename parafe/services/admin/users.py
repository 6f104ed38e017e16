"""Users of a subscriber, shared by every connector: ``exportUsersData`` (spec §2.5.21 / §2.6.19) and
``synchronizeUsers`` (spec §2.5.24 / §2.6.21); DECISIONS D17.

Export shape (G-35, chosen to satisfy the real clients: Maarch reads ``users[].{email, nom, prenom}``,
SymfonyDocapostBundle reads ``users[].circuits[].habilitations[].profil``)::

    {"users": [{"email", "nom", "prenom", "authenticationType",
                "circuits": [{"circuitId", "circuitName", "role", "habilitations": [{"profil", "role"}]}],
                "groups": ["…"]}]}

Synchronisation (subscriber admins only, Basic or admin certificate): a user in the list and in Parafe is
updated (names, authentication type, groups), a user only in the list is created, a user only in Parafe is
deactivated (its account stays for the documents' history, its roles and group memberships are removed; the
calling admin is never removed). The answer maps each refused entry (by e-mail, or ``#<index>`` without one)
to the reason, empty when all went well.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import Circuit, CircuitRole, Group, GroupMember, User
from parafe.domain.emails import is_email
from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import Account, Principal
from parafe.services.access.rights import AGENT, subscriber_account

AUTH_TYPES = ("CERTIFICAT", "BASIC")
FIELDS = ("authenticationType", "email", "firstName", "lastName", "groups")
MAX_USERS = 10_000


def _is_agent(session: Session, account: Account) -> bool:
    return session.scalar(select(CircuitRole.circuit_id).where(
        CircuitRole.user_id == account.user_id, CircuitRole.role == AGENT).limit(1)) is not None


def export_users(ctx: AppContext, principal: Principal, siren: str | int) -> dict[str, Any]:
    """The active users of a subscriber with their circuits, roles and groups (D17: its admins and agents may
    call it). Raises ``SUBSCRIBER_UNKNOWN_OR_FORBIDDEN`` (no account in that siren) and
    ``AUTH_ACCESS_DENIED`` (an account that is neither admin nor agent)."""
    with ctx.db.read() as session:
        subscriber, account = subscriber_account(session, principal, str(siren))
        if not account.is_admin and not _is_agent(session, account):
            raise ParafeError(E.AUTH_ACCESS_DENIED, detail="exportUsersData needs an admin or an agent")
        users = session.scalars(select(User).where(
            User.subscriber_id == subscriber.id, User.active.is_(True)).order_by(User.email)).all()
        roles: dict[int, list[tuple[str, str, str]]] = {}
        for user_id, key, name, role in session.execute(
                select(CircuitRole.user_id, Circuit.key, Circuit.name, CircuitRole.role)
                .join(Circuit, Circuit.id == CircuitRole.circuit_id)
                .where(Circuit.subscriber_id == subscriber.id, Circuit.on_demand.is_(False))
                .order_by(Circuit.key, CircuitRole.role)):
            roles.setdefault(user_id, []).append((key, name, role))
        groups: dict[int, list[str]] = {}
        for user_id, group_name in session.execute(
                select(GroupMember.user_id, Group.name).join(Group, Group.id == GroupMember.group_id)
                .where(Group.subscriber_id == subscriber.id).order_by(Group.name)):
            groups.setdefault(user_id, []).append(group_name)
        out = []
        for user in users:
            out.append({
                "email": user.email,
                "nom": user.lastname,
                "prenom": user.firstname,
                "authenticationType": user.authentication_type,
                "admin": user.is_admin,
                "circuits": [
                    {"circuitId": key, "circuitName": name, "role": role,
                     "habilitations": [{"profil": user.authentication_type, "role": role}]}
                    for key, name, role in roles.get(user.id, [])],
                "groups": groups.get(user.id, []),
            })
        return {"users": out}


def _entry_error(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "l'entrée doit être un objet JSON"
    missing = [f for f in FIELDS if f not in entry or entry[f] is None]
    if missing:
        return "champ(s) obligatoire(s) absent(s) : " + ", ".join(missing)
    for name in ("authenticationType", "email", "firstName", "lastName"):
        if not isinstance(entry[name], str):
            return f"le champ {name} doit être une chaîne de caractères"
    texts = [entry[n] for n in ("authenticationType", "email", "firstName", "lastName")]
    if isinstance(entry["groups"], list):
        texts += [g for g in entry["groups"] if isinstance(g, str)]
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for text in texts for ch in text):
        return "caractère de contrôle interdit"
    if entry["authenticationType"].strip().upper() not in AUTH_TYPES:
        return "authenticationType doit valoir CERTIFICAT ou BASIC"
    email = entry["email"].strip()
    if not is_email(email):
        return "adresse électronique invalide"
    if len(entry["firstName"]) > 255 or len(entry["lastName"]) > 255:
        return "nom ou prénom trop long (255 caractères au plus)"
    if not isinstance(entry["groups"], list) or not all(isinstance(g, str) and g.strip() for g in entry["groups"]):
        return "groups doit être une liste de noms de groupes"
    if any(len(g) > 255 for g in entry["groups"]):
        return "nom de groupe trop long (255 caractères au plus)"
    return None


def _group(session: Session, subscriber_id: int, name: str, cache: dict[str, Group]) -> Group:
    if name not in cache:
        group = session.scalar(select(Group).where(Group.subscriber_id == subscriber_id, Group.name == name))
        if group is None:
            group = Group(subscriber_id=subscriber_id, name=name)
            session.add(group)
            session.flush()
        cache[name] = group
    return cache[name]


def synchronize_users(ctx: AppContext, principal: Principal, siren: str | int, users: Any) -> dict[str, str]:
    """Make the subscriber's users match ``users`` (a list of ``{authenticationType, email, firstName,
    lastName, groups}``, or ``{"users": [...]}``); returns ``{email: reason}`` for the entries not applied.

    Raises ``SUBSCRIBER_UNKNOWN_OR_FORBIDDEN`` (no account in that siren), ``AUTH_ACCESS_DENIED`` (not an
    admin of it) and ``BAD_REQUEST`` (the body is not a list). One transaction: valid entries are applied
    together; a refused entry is left as it was (an existing user in error is neither updated nor removed).
    """
    if isinstance(users, dict) and isinstance(users.get("users"), list):
        users = users["users"]
    if not isinstance(users, list):
        raise ParafeError(E.BAD_REQUEST, reason="le corps doit être une liste JSON d'utilisateurs")
    if len(users) > MAX_USERS:
        raise ParafeError(E.BAD_REQUEST, reason=f"au plus {MAX_USERS} utilisateurs par appel")
    errors: dict[str, str] = {}
    with ctx.db.write() as session:
        subscriber, account = subscriber_account(session, principal, str(siren))
        if not account.is_admin:
            raise ParafeError(E.AUTH_ACCESS_DENIED, detail="synchronizeUsers needs a subscriber admin")
        existing = {u.email.lower(): u for u in session.scalars(
            select(User).where(User.subscriber_id == subscriber.id))}
        seen: set[str] = set()
        group_cache: dict[str, Group] = {}
        for index, entry in enumerate(users):
            key = (entry.get("email") if isinstance(entry, dict) and isinstance(entry.get("email"), str)
                   else None) or f"#{index}"
            key = key.strip().lower() if not key.startswith("#") else key
            problem = _entry_error(entry)
            if problem is None and key in seen:
                problem = "utilisateur présent plusieurs fois dans la liste"
            if problem is not None:
                errors[key] = problem
                seen.add(key)
                continue
            seen.add(key)
            auth_type = entry["authenticationType"].strip().upper()
            user = existing.get(key)
            if user is None:
                user = User(subscriber_id=subscriber.id, email=key, authentication_type=auth_type)
                session.add(user)
            user.firstname = entry["firstName"].strip()
            user.lastname = entry["lastName"].strip()
            user.authentication_type = auth_type
            user.active = True
            session.flush()
            wanted = {g.strip() for g in entry["groups"]}
            session.execute(sql_delete(GroupMember).where(
                GroupMember.user_id == user.id,
                GroupMember.group_id.in_(select(Group.id).where(Group.subscriber_id == subscriber.id))))
            for name in sorted(wanted):
                session.add(GroupMember(group_id=_group(session, subscriber.id, name, group_cache).id,
                                        user_id=user.id))
        for email, user in existing.items():
            if email in seen or not user.active:
                continue
            if user.id == account.user_id:
                errors[email] = "l'administrateur qui synchronise ne peut être supprimé"
                continue
            user.active = False
            session.execute(sql_delete(CircuitRole).where(CircuitRole.user_id == user.id))
            session.execute(sql_delete(GroupMember).where(GroupMember.user_id == user.id))
    return errors
