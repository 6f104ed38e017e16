"""Helpers of the REST API tests: requests, error assertions and direct database set-up of workflow states."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from parafe.context import AppContext
from parafe.db.models import Circuit, CircuitStep, Document, HistoryEntry, utcnow
from parafe.domain.errors import ErrorDef
from parafe.domain.states import State
from tests.fixtures.files import pdf_bytes

V1 = "/parapheur-ws/rest/v1"
SIREN = "123456789"
OTHER_SIREN = "987654321"
AGENT = "agent@demo.parafe.test"
VISA = "visa@demo.parafe.test"
SIGNER = "signataire@demo.parafe.test"
ADMIN = "admin@demo.parafe.test"
OTHER = "agent@autre.parafe.test"


def unique(suffix: str = ".pdf") -> str:
    return f"doc-{uuid.uuid4().hex[:10]}{suffix}"


def upload(client: httpx.Client, circuit: str = "bureautique", name: str | None = None, data: bytes | None = None,
           siren: str = SIREN, **fields: str) -> httpx.Response:
    return client.post(f"{V1}/documents/v2/{siren}/{circuit}/upload",
                       files={"content": (name or unique(), data if data is not None else pdf_bytes(),
                                          "application/pdf")},
                       data=fields)


def deposit(client: httpx.Client, circuit: str = "bureautique", **kw: Any) -> int:
    r = upload(client, circuit, **kw)
    assert r.status_code == 200, r.text
    return int(r.text)


def error(response: httpx.Response, status: int, entry: ErrorDef) -> dict[str, Any]:
    """Assert the D2 error shape, status and catalogue code; returns the body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"generation", "developerMessage", "userFriendlyMessage", "errorCode"}, body
    assert body["errorCode"] == entry.code, body
    assert isinstance(body["generation"], int)
    assert body["generation"] > 1_600_000_000_000
    assert body["userFriendlyMessage"] == entry.message or "{" in entry.message, body
    return body


def set_state(ctx: AppContext, document_id: int, state: State, *, actor: str = "Sophie Signataire",
              comment: str | None = None, refusal: str | None = None, current_step: int | None = None) -> None:
    """What the workflow would do: move a document to ``state`` with its history entry."""
    with ctx.db.write() as session:
        doc = session.get(Document, document_id)
        assert doc is not None
        doc.state = state.value
        if refusal is not None:
            doc.refusal_message = refusal
        if current_step is not None:
            doc.current_step = current_step
        session.add(HistoryEntry(document_id=document_id, state=state.value, user_fullname=actor, comment=comment,
                                 created_at=utcnow()))


def history_by(ctx: AppContext, document_id: int, state: State, user_email: str, when: Any = None) -> None:
    """A history entry in ``state`` by the demo user ``user_email`` (for search by validateBy / signBy)."""
    from parafe.db.models import User

    with ctx.db.write() as session:
        user = session.scalar(select(User).where(User.email == user_email))
        assert user is not None
        session.add(HistoryEntry(document_id=document_id, state=state.value, user_id=user.id,
                                 user_fullname=user.full_name, created_at=when or utcnow()))


def make_circuit(ctx: AppContext, key: str, ctype: str, steps: list[str], *,
                 model: list[dict[str, Any]] | None = None, siren: str = SIREN,
                 roles: dict[str, str] | None = None) -> int:
    """A circuit of the demo subscriber (what an administrator would configure); ``roles``: email → role."""
    from parafe.db.models import CircuitRole, Subscriber, User

    roles = roles if roles is not None else {AGENT: "agent"}
    with ctx.db.write() as session:
        sub = session.scalar(select(Subscriber).where(Subscriber.siren == siren))
        assert sub is not None
        existing = session.scalar(select(Circuit).where(Circuit.subscriber_id == sub.id, Circuit.key == key))
        if existing is not None:
            return existing.id
        circuit = Circuit(subscriber_id=sub.id, key=key, name=key, type=ctype, metadata_model=model, settings={})
        session.add(circuit)
        session.flush()
        for position, kind in enumerate(steps):
            session.add(CircuitStep(circuit_id=circuit.id, position=position, kind=kind, config={}))
        for email, role in roles.items():
            user = session.scalar(select(User).where(User.email == email, User.subscriber_id == sub.id))
            assert user is not None
            session.add(CircuitRole(circuit_id=circuit.id, user_id=user.id, role=role))
        return circuit.id


def otp_xml(*signers: dict[str, str]) -> bytes:
    """An OTP information file (§6.3) for signers 0..n-1."""
    items = []
    for i, signer in enumerate(signers):
        for key in ("firstname", "lastname", "phonenumber", "email"):
            if key in signer:
                items.append(f'    <meta-data name="OTP_{key}_{i}" value="{signer[key]}"/>')
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<meta-data-list>\n' + "\n".join(items)
            + "\n</meta-data-list>\n").encode()


def meta_xml(**values: str) -> bytes:
    items = "".join(f'<meta-data name="{k}" value="{v}"/>' for k, v in values.items())
    return f'<?xml version="1.0" encoding="UTF-8"?><meta-data-list>{items}</meta-data-list>'.encode()
