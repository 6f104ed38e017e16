"""Basic authentication abuse limits (issue 18): throttling per account and per client address, with back-off
kept in the database, and the same argon2 work whether the account exists or not."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from parafe.db.models import LoginThrottle
from parafe.domain.errors import E, ParafeError
from parafe.security.identity import RequestIdentity
from parafe.services.access.auth import authenticate
from parafe.services.demo import ADMIN

ADDRESS = "203.0.113.7"


@pytest.fixture(autouse=True)
def long_back_off(ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first back-off of 5 minutes: the outcomes below do not depend on how fast the machine is."""
    monkeypatch.setattr(ctx.settings, "login_backoff_seconds", 300.0)


def _password(ctx: Any) -> str:
    return (ctx.settings.resolved_home / "demo" / "admin-password.txt").read_text().strip()


def _try(ctx: Any, login: str, password: str, client: str | None = ADDRESS) -> str:
    try:
        authenticate(ctx, RequestIdentity(basic=(login, password), client=client))
    except ParafeError as error:
        return error.error.key
    return "ok"


def test_twenty_wrong_passwords_then_the_right_one_is_refused(ctx: Any) -> None:
    outcomes = [_try(ctx, ADMIN, f"mauvais-{i}") for i in range(20)]
    # 5 free failures, the 6th starts the back-off, then every attempt is refused before any password check
    assert outcomes == ["BAD_CREDENTIALS"] * 6 + ["LOGIN_THROTTLED"] * 14
    with pytest.raises(ParafeError) as info:
        authenticate(ctx, RequestIdentity(basic=(ADMIN, _password(ctx)), client=ADDRESS))
    assert info.value.error is E.LOGIN_THROTTLED
    assert info.value.http_status == 429
    assert "réessayez dans" in info.value.message
    # from another address too: the account itself is throttled
    assert _try(ctx, ADMIN.upper(), _password(ctx), "198.51.100.9") == "LOGIN_THROTTLED"
    with ctx.db.read() as s:  # the state is in the database, where every process and node sees it
        rows = {(r.scope, r.key): r for r in s.scalars(select(LoginThrottle))}
    assert rows[("account", ADMIN)].blocked_until is not None
    assert rows[("address", ADDRESS)].failures >= 5


def test_back_off_ends_and_success_clears_the_account(ctx: Any) -> None:
    for i in range(6):
        _try(ctx, ADMIN, f"mauvais-{i}")
    assert _try(ctx, ADMIN, _password(ctx)) == "LOGIN_THROTTLED"
    with ctx.db.write() as s:  # the back-off is over (time moves on)
        for row in s.scalars(select(LoginThrottle)):
            row.blocked_until = None
    assert _try(ctx, ADMIN, _password(ctx)) == "ok"
    with ctx.db.read() as s:
        assert s.scalar(select(LoginThrottle).where(LoginThrottle.scope == "account")) is None
    assert _try(ctx, ADMIN, "mauvais") == "BAD_CREDENTIALS"  # counting starts again from zero


def test_an_address_trying_many_accounts_is_throttled(ctx: Any) -> None:
    outcomes = [_try(ctx, f"inconnu{i}@demo.parafe.test", "x") for i in range(40)]
    assert outcomes == ["BAD_CREDENTIALS"] * 31 + ["LOGIN_THROTTLED"] * 9
    assert _try(ctx, ADMIN, _password(ctx)) == "LOGIN_THROTTLED"  # this address must wait
    assert _try(ctx, ADMIN, _password(ctx), "198.51.100.9") == "ok"  # another one is not concerned


@pytest.fixture
def verify_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the argon2 verifications (the real ones run: a spy, not a stand-in)."""
    calls: list[str] = []
    real = PasswordHasher.verify

    def spy(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        calls.append(str(hash)[:9])
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    return calls


@pytest.mark.parametrize("login", ["inconnu@demo.parafe.test", "agent@demo.parafe.test", ADMIN])
def test_unknown_and_real_accounts_cost_one_argon2_verification(ctx: Any, verify_calls: list[str],
                                                                 login: str) -> None:
    """An unknown login, a certificate-only account (the agent) and the real Basic account with a wrong password
    all run exactly one argon2id verification with the same parameters: the answer time does not tell them
    apart (bench/login_timing.py measures it)."""
    assert _try(ctx, login, "mauvais") == "BAD_CREDENTIALS"
    assert len(verify_calls) == 1
    assert verify_calls[0].startswith("$argon2id")
