"""Server-held signing keys encrypted at rest (issue 20, :mod:`parafe.services.signers.server_keys`) and the challenge
that binds a passkey assertion to the digests being signed (:func:`parafe.services.signers.passkeys.binding_challenge`).
The PKCS#11 variant and the whole passkey flow run in tests/portal/test_passkey_signing.py."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from parafe.db.models import ServerKey, UserCertificate
from parafe.domain.errors import E, ParafeError
from parafe.security import pki
from parafe.services.access.auth import principal_for_email
from parafe.services.signers import passkeys, server_keys
from parafe.signing.keys import verify_raw

SIGNER = "signataire@demo.parafe.test"


def test_encrypted_key_is_issued_by_the_ca_bound_and_opened_only_with_the_operator_secret(ctx: Any) -> None:
    info = server_keys.create(ctx, SIGNER)
    assert info.kind == "encrypted"
    assert "CN=Sophie Signataire" in info.subject
    key = server_keys.active_key(ctx, info.user_id)
    assert key is not None
    assert (key.encrypted_key or "").startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    secret = ctx.settings.pki_dir / "server-keys.secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(key.certificate_pem.encode())
    ca = pki.load_ca(ctx.settings.pki_dir, trusted=True)
    assert cert.issuer == ca.cert.subject
    assert cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)[0].value == SIGNER
    with ctx.db.read() as session:
        assert session.scalar(select(UserCertificate.id).where(
            UserCertificate.user_id == info.user_id, UserCertificate.fingerprint == info.fingerprint))
    signer = server_keys.signer_for(ctx, key)
    assert verify_raw(cert, signer.sign_raw(b"parafe"), b"parafe")
    with pytest.raises(ParafeError) as again:
        server_keys.create(ctx, SIGNER)
    assert again.value.error is E.SERVER_KEY_EXISTS
    Path(secret).write_text("x" * 64)  # another operator secret: the key does not open
    with pytest.raises(ParafeError) as wrong:
        server_keys.signer_for(ctx, key)
    assert wrong.value.error is E.SERVER_KEY_UNAVAILABLE
    assert server_keys.revoke(ctx, SIGNER) == 1
    assert server_keys.active_key(ctx, info.user_id) is None
    with ctx.db.read() as session:
        assert session.scalar(select(ServerKey.revoked_at).where(ServerKey.user_id == info.user_id))


def test_signature_needs_a_server_key_then_a_passkey(ctx: Any) -> None:
    principal = principal_for_email(ctx, SIGNER)
    rp = passkeys.RelyingParty("localhost", "https://localhost:8443")
    with pytest.raises(ParafeError) as no_key:
        passkeys.prepare_signature(ctx, principal, rp, [100000000])
    assert no_key.value.error is E.SERVER_KEY_MISSING
    server_keys.create(ctx, SIGNER)
    with pytest.raises(ParafeError) as no_passkey:
        passkeys.prepare_signature(ctx, principal, rp, [100000000])
    assert no_passkey.value.error is E.PASSKEY_MISSING


def test_the_challenge_binds_nonce_documents_and_every_digest() -> None:
    d1, d2 = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    base = passkeys.binding_challenge("00" * 32, [(1, [d1]), (2, [d2])])
    assert len(base) == 32
    variants = [
        passkeys.binding_challenge("01" * 32, [(1, [d1]), (2, [d2])]),  # another nonce
        passkeys.binding_challenge("00" * 32, [(1, [d1]), (2, [d1])]),  # another digest
        passkeys.binding_challenge("00" * 32, [(2, [d2]), (1, [d1])]),  # another order
        passkeys.binding_challenge("00" * 32, [(1, [d1])]),  # a document less
        passkeys.binding_challenge("00" * 32, [(1, [d1]), (3, [d2])]),  # another document id
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)
    text = b"parafe-passkey-signature-v1\n" + b"00" * 32 + b"\n" + f"1:{d1.hex()}\n2:{d2.hex()}\n".encode()
    assert base == hashlib.sha256(text).digest()  # what static/passkeys.js recomputes
