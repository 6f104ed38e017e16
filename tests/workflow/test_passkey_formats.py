"""The passkey-confirmed signature (issue 20) at the service level, on SQLite and PostgreSQL: one assertion signs
an office document (detached XAdES) and a PES (XAdES-EPES per bordereau) at once with the server-held key — the
same formats and checks as the local helper — and the nonce, the pending state of a passkey enrolled after a
password login and the binding to the digests are enforced.

The authenticator here is a small software one (ES256, "none" attestation) written for the test: it produces
real WebAuthn registration and assertion responses that py_webauthn verifies; the browser test
(tests/portal/test_passkey_signing.py) uses Chromium's virtual authenticator.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import re
import uuid
import zipfile
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from parafe.db.models import Document, HistoryEntry
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import State
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import SIGNER
from parafe.services.signers import passkeys, server_keys
from tests.conftest import TESTDATA
from tests.workflow.conftest import deposit_file, run_jobs

RP = passkeys.RelyingParty("parapheur.exemple.fr", "https://parapheur.exemple.fr")


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SoftAuthenticator:
    """A user-verifying platform authenticator with one ES256 credential."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.count = 0

    def _rp_hash(self) -> bytes:
        return hashlib.sha256(RP.id.encode()).digest()

    def create(self, options: str) -> dict[str, Any]:
        challenge = json.loads(options)["challenge"]
        numbers = self.key.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        auth_data = (self._rp_hash() + bytes([0x45]) + self.count.to_bytes(4, "big") + bytes(16)
                     + len(self.credential_id).to_bytes(2, "big") + self.credential_id + cose)
        client_data = json.dumps({"type": "webauthn.create", "challenge": challenge, "origin": RP.origin}).encode()
        return {"id": b64u(self.credential_id), "rawId": b64u(self.credential_id), "type": "public-key",
                "clientExtensionResults": {},
                "response": {"clientDataJSON": b64u(client_data),
                             "attestationObject": b64u(cbor2.dumps({"fmt": "none", "attStmt": {},
                                                                    "authData": auth_data}))}}

    def get(self, options: str) -> dict[str, Any]:
        challenge = json.loads(options)["challenge"]
        self.count += 1
        auth_data = self._rp_hash() + bytes([0x05]) + self.count.to_bytes(4, "big")
        client_data = json.dumps({"type": "webauthn.get", "challenge": challenge, "origin": RP.origin}).encode()
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {"id": b64u(self.credential_id), "rawId": b64u(self.credential_id), "type": "public-key",
                "clientExtensionResults": {},
                "response": {"clientDataJSON": b64u(client_data), "authenticatorData": b64u(auth_data),
                             "signature": b64u(signature)}}


def office_document(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        zf.writestr("content.xml", f"<office:document-content>{text}</office:document-content>")
    return buf.getvalue()


def pes_document() -> bytes:
    data = (TESTDATA / "pes" / "samples" / "valid_unsigned_PES_ex.xml").read_bytes()
    return re.sub(rb'<NomFic V="[^"]*"/>', f'<NomFic V="PK_{uuid.uuid4().hex[:8]}"/>'.encode(), data, count=1)


def state_of(ctx: Any, doc_id: int) -> str | None:
    with ctx.db.read() as session:
        return session.scalar(select(Document.state).where(Document.id == doc_id))


def at_signature(ctx: Any, tmp_path: Path) -> tuple[int, int]:
    office = deposit_file(ctx, tmp_path, f"arrete-{uuid.uuid4().hex[:6]}.odt", office_document("arrêté"),
                          circuit="xml")
    pes = deposit_file(ctx, tmp_path, "flux.xml", pes_document(), circuit="pes")
    run_jobs(ctx, until=lambda: state_of(ctx, office) == state_of(ctx, pes) == State.SENT_FOR_SIGN.value)
    return office, pes


def enrol(ctx: Any, principal: Any) -> SoftAuthenticator:
    authenticator = SoftAuthenticator()
    options = passkeys.begin_registration(ctx, principal, RP)
    passkeys.finish_registration(ctx, principal, RP, authenticator.create(options), "Téléphone")
    return authenticator


def test_one_assertion_signs_an_office_document_and_a_pes(ctx: Any, tmp_path: Path) -> None:
    server_keys.create(ctx, SIGNER)  # encrypted at rest (no token configured)
    principal = dataclasses.replace(principal_for_email(ctx, SIGNER), method="certificate")
    authenticator = enrol(ctx, principal)
    office, pes = at_signature(ctx, tmp_path)

    prepared = passkeys.prepare_signature(ctx, principal, RP, [office, pes])
    assert {d["kind"] for d in prepared.documents} == {"office", "pes"}
    assertion = authenticator.get(prepared.options)
    # the same assertion presented for another preparation of the same documents: refused, nothing signed
    other = passkeys.prepare_signature(ctx, principal, RP, [office, pes])
    with pytest.raises(ParafeError) as wrong:
        passkeys.finish_signature(ctx, principal, RP, other.session_id, assertion)
    assert wrong.value.error is E.PASSKEY_ASSERTION_REFUSED
    assert state_of(ctx, office) == state_of(ctx, pes) == State.SENT_FOR_SIGN.value

    outcomes = passkeys.finish_signature(ctx, principal, RP, prepared.session_id, assertion)
    assert [(o.id, o.ok) for o in outcomes] == [(office, True), (pes, True)], outcomes
    with pytest.raises(ParafeError) as replay:
        passkeys.finish_signature(ctx, principal, RP, prepared.session_id, assertion)
    assert replay.value.error is E.PASSKEY_CHALLENGE_USED
    with ctx.db.read() as session:
        for doc_id in (office, pes):
            document = session.get(Document, doc_id)
            assert document is not None
            assert (document.signed_blob_sha256 or document.signature_blob_sha256)
            comments = list(session.scalars(select(HistoryEntry.comment).where(
                HistoryEntry.document_id == doc_id, HistoryEntry.state.is_(None))))
            assert any(b64u(authenticator.credential_id) in (c or "") for c in comments), comments


def test_a_passkey_enrolled_after_a_password_login_does_not_sign(ctx: Any, tmp_path: Path) -> None:
    server_keys.create(ctx, SIGNER)
    trusted = dataclasses.replace(principal_for_email(ctx, SIGNER), method="certificate")
    enrol(ctx, trusted)  # an active passkey exists, so the preparation goes through
    by_password = dataclasses.replace(trusted, method="basic")
    pending = enrol(ctx, by_password)
    office, _pes = at_signature(ctx, tmp_path)
    prepared = passkeys.prepare_signature(ctx, trusted, RP, [office])
    assert b64u(pending.credential_id) not in prepared.options  # not offered to the browser
    with pytest.raises(ParafeError) as refused:
        passkeys.finish_signature(ctx, trusted, RP, prepared.session_id, pending.get(prepared.options))
    assert refused.value.error is E.PASSKEY_PENDING
    assert state_of(ctx, office) == State.SENT_FOR_SIGN.value


def test_stale_challenges_are_forgotten_used_signature_nonces_kept(ctx: Any, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from parafe.db.models import PasskeyChallenge

    server_keys.create(ctx, SIGNER)
    principal = dataclasses.replace(principal_for_email(ctx, SIGNER), method="certificate")
    authenticator = enrol(ctx, principal)
    office, pes = at_signature(ctx, tmp_path)
    used = passkeys.prepare_signature(ctx, principal, RP, [office])
    passkeys.finish_signature(ctx, principal, RP, used.session_id, authenticator.get(used.options))
    passkeys.prepare_signature(ctx, principal, RP, [pes])  # left unused
    with ctx.db.write() as session:
        session.execute(update(PasskeyChallenge).values(created_at=datetime.now(UTC) - timedelta(days=2)))
    passkeys.begin_registration(ctx, principal, RP)
    with ctx.db.read() as session:
        rows = [(r.purpose, r.session_id, r.used_at is not None)
                for r in session.scalars(select(PasskeyChallenge).order_by(PasskeyChallenge.id))]
    assert rows == [("sign", used.session_id, True), ("register", None, False)]
