"""One-time codes at rest: only a salted SHA-256 of a code is stored (``salt$hex``), for the OTP signature of
circuits (``otp_challenges``) and the OSS signing pages (``oss_codes``); a code is checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def hash_code(code: str, salt: str | None = None) -> str:
    """``salt$sha256(salt:code)``, with a new random salt unless one is given."""
    salt = salt or secrets.token_hex(16)
    return f"{salt}${hashlib.sha256(f'{salt}:{code}'.encode()).hexdigest()}"


def code_matches(code_hash: str, code: str) -> bool:
    """Whether ``code`` (surrounding spaces ignored) is the one hashed in ``code_hash``."""
    salt, _, _ = code_hash.partition("$")
    return hmac.compare_digest(hash_code(code.strip(), salt), code_hash)
