"""exportUsersData and synchronizeUsers through the service layer, on both backends."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import User
from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import principal_for_email
from parafe.services.admin.users import export_users, synchronize_users

ADMIN = "admin@demo.parafe.test"


def _all(**changes: Any) -> list[dict[str, Any]]:
    users = [("agent@demo.parafe.test", "Alice", "Agent", "CERTIFICAT"),
             ("visa@demo.parafe.test", "Victor", "Valideur", "CERTIFICAT"),
             ("signataire@demo.parafe.test", "Sophie", "Signataire", "CERTIFICAT"),
             (ADMIN, "Adèle", "Administratrice", "BASIC")]
    return [{"authenticationType": a, "email": e, "firstName": f, "lastName": last, "groups": [],
             **changes.get(e, {})} for e, f, last, a in users]


def test_sync_entry_errors_leave_users_untouched(ctx: Any) -> None:
    admin = principal_for_email(ctx, ADMIN)
    body: list[Any] = _all(**{"visa@demo.parafe.test": {"groups": "pas une liste"}})
    body.append(body[0] | {"firstName": "Doublon"})
    body.append({"authenticationType": "BASIC", "email": "ctl@x.fr", "firstName": "a\x00", "lastName": "b",
                 "groups": []})
    body.append("pas un objet")
    errors = synchronize_users(ctx, admin, "123456789", body)
    assert set(errors) == {"visa@demo.parafe.test", "agent@demo.parafe.test", "ctl@x.fr", "#6"}
    with ctx.db.read() as s:  # the refused existing user is neither updated nor removed
        visa = s.scalar(select(User).where(User.email == "visa@demo.parafe.test"))
        assert visa is not None
        assert visa.active
        agent = s.scalar(select(User).where(User.email == "agent@demo.parafe.test"))
        assert agent is not None
        assert agent.firstname == "Alice"
    exported = {u["email"] for u in export_users(ctx, admin, "123456789")["users"]}
    assert exported == {"agent@demo.parafe.test", "visa@demo.parafe.test", "signataire@demo.parafe.test", ADMIN}


def test_sync_reactivates_and_refuses_non_admins(ctx: Any) -> None:
    admin = principal_for_email(ctx, ADMIN)
    body = _all()
    assert synchronize_users(ctx, admin, "123456789", [u for u in body if u["email"] != "visa@demo.parafe.test"]) \
        == {}
    assert "visa@demo.parafe.test" not in {u["email"] for u in export_users(ctx, admin, "123456789")["users"]}
    assert synchronize_users(ctx, admin, "123456789", body) == {}
    visa = [u for u in export_users(ctx, admin, "123456789")["users"] if u["email"] == "visa@demo.parafe.test"]
    assert visa
    assert visa[0]["circuits"] == []  # back, without its former roles
    with pytest.raises(ParafeError) as info:
        synchronize_users(ctx, principal_for_email(ctx, "agent@demo.parafe.test"), "123456789", body)
    assert info.value.error is E.AUTH_ACCESS_DENIED
    with pytest.raises(ParafeError) as info:
        synchronize_users(ctx, admin, "123456789", "pas une liste")
    assert info.value.error is E.BAD_REQUEST
