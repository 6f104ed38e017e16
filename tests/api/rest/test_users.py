"""REST user administration against the real server: exportUsersData (R19, D17) and synchronization (R21),
with Basic credentials and with certificates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from parafe.db.models import Group, GroupMember, User
from parafe.domain.errors import E
from tests.api.rest.conftest import Rest
from tests.api.rest.helpers import ADMIN, AGENT, OTHER, OTHER_SIREN, SIGNER, SIREN, V1, VISA, error

EXPORT = f"{V1}/exportUsersData"
SYNC = f"{V1}/synchronization/{SIREN}/users"


def test_export_users(rest: Rest) -> None:
    with rest.client(AGENT) as c:  # real clients call it with their deposit certificate (D17)
        r = c.get(EXPORT, params={"siren": SIREN})
        assert r.status_code == 200, r.text
        users = {u["email"]: u for u in r.json()["users"]}
        assert set(users) == {AGENT, VISA, SIGNER, ADMIN}
        alice = users[AGENT]
        assert (alice["nom"], alice["prenom"], alice["authenticationType"]) == ("Agent", "Alice", "CERTIFICAT")
        circuits = {x["circuitId"]: x for x in alice["circuits"]}
        assert {"bureautique", "pes", "otp"} <= set(circuits)
        assert circuits["bureautique"]["role"] == "agent"
        assert circuits["bureautique"]["habilitations"] == [{"profil": "CERTIFICAT", "role": "agent"}]
        assert {(x["circuitId"], x["role"]) for x in users[VISA]["circuits"]} == {("bureautique", "valideur")}
        assert users[ADMIN]["authenticationType"] == "BASIC"
        assert users[ADMIN]["admin"] is True
        error(c.get(EXPORT, params={"siren": OTHER_SIREN}), 403, E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN)
        error(c.get(EXPORT), 400, E.BAD_REQUEST)
    with rest.basic() as c:  # the documented way: Authorization: BASIC (§2.5.21)
        assert len(c.get(EXPORT, params={"siren": SIREN}).json()["users"]) == 4
    with rest.basic(password="mauvais") as c:
        error(c.get(EXPORT, params={"siren": SIREN}), 401, E.BAD_CREDENTIALS)
    with rest.client(VISA) as c:  # neither admin nor agent
        error(c.get(EXPORT, params={"siren": SIREN}), 403, E.AUTH_ACCESS_DENIED)
    with rest.client(OTHER) as c:
        assert [u["email"] for u in c.get(EXPORT, params={"siren": OTHER_SIREN}).json()["users"]] == [OTHER]


def _entry(email: str, first: str, last: str, auth: str = "CERTIFICAT", groups: list[str] | None = None
           ) -> dict[str, Any]:
    return {"authenticationType": auth, "email": email, "firstName": first, "lastName": last,
            "groups": groups or []}


def test_synchronize_users(rest: Rest) -> None:
    with rest.client(AGENT) as c:  # admins only
        error(c.put(SYNC, json=[]), 403, E.AUTH_ACCESS_DENIED)
    with rest.basic() as c:
        error(c.put(SYNC, content=b"{pas du json", headers={"content-type": "application/json"}), 400,
              E.BAD_REQUEST)
        error(c.put(SYNC, json={"a": 1}), 400, E.BAD_REQUEST)
        error(c.put(f"{V1}/synchronization/{OTHER_SIREN}/users", json=[]), 403,
              E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN)
        body = [
            _entry(AGENT, "Alice", "Agent-Martin", groups=["Secrétariat"]),
            _entry(VISA, "Victor", "Valideur", groups=["Direction", "Secrétariat"]),
            _entry(SIGNER, "Sophie", "Signataire"),
            _entry(ADMIN, "Adèle", "Administratrice", auth="BASIC"),
            _entry("nouveau@demo.parafe.test", "Nina", "Nouvelle", groups=["Direction"]),
            _entry("sans-nom@demo.parafe.test", "X", "Y") | {"lastName": None},
            _entry("pas-un-email", "X", "Y"),
            _entry("bad-auth@demo.parafe.test", "X", "Y", auth="LDAP"),
        ]
        r = c.put(SYNC, json=body)
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"sans-nom@demo.parafe.test", "pas-un-email", "bad-auth@demo.parafe.test"}
        users = {u["email"]: u for u in c.get(EXPORT, params={"siren": SIREN}).json()["users"]}
        assert users[AGENT]["nom"] == "Agent-Martin"
        assert users[AGENT]["groups"] == ["Secrétariat"]
        assert users[VISA]["groups"] == ["Direction", "Secrétariat"]
        assert users["nouveau@demo.parafe.test"]["prenom"] == "Nina"
        # the agent's circuits are untouched by an update
        assert {x["circuitId"] for x in users[AGENT]["circuits"]} >= {"bureautique", "pes"}
        # a user only in Parafe is removed (deactivated; the admin who calls is never removed)
        r = c.put(SYNC, json=[_entry(AGENT, "Alice", "Agent"), _entry(SIGNER, "Sophie", "Signataire"),
                              _entry(VISA, "Victor", "Valideur")])
        assert r.status_code == 200
        assert set(r.json()) == {ADMIN}
        emails = {u["email"] for u in c.get(EXPORT, params={"siren": SIREN}).json()["users"]}
        assert emails == {AGENT, SIGNER, VISA, ADMIN}
        # all good: empty answer
        r = c.put(SYNC, json=[_entry(AGENT, "Alice", "Agent"), _entry(SIGNER, "Sophie", "Signataire"),
                              _entry(VISA, "Victor", "Valideur"), _entry(ADMIN, "Adèle", "Administratrice",
                                                                         auth="BASIC")])
        assert r.status_code == 200
        assert r.content == b""
    with rest.ctx.db.read() as s:
        gone = s.scalar(select(User).where(User.email == "nouveau@demo.parafe.test"))
        assert gone is not None
        assert gone.active is False
        assert s.scalars(select(GroupMember).where(GroupMember.user_id == gone.id)).all() == []
        assert {g.name for g in s.scalars(select(Group))} >= {"Direction", "Secrétariat"}
    with rest.client("admin@demo.parafe.test") as c:  # or an admin's certificate
        r = c.put(SYNC, json={"users": [_entry(AGENT, "Alice", "Agent"), _entry(SIGNER, "Sophie", "Signataire"),
                                        _entry(VISA, "Victor", "Valideur"),
                                        _entry(ADMIN, "Adèle", "Administratrice", auth="BASIC")]})
        assert r.status_code == 200
        assert r.content == b""
