"""Portal security: the CSRF tokens, the Origin check and the HTTP security headers (CSP without inline scripts).

CSRF: every state-changing request (POST) must carry a token (form field ``csrf`` or header ``X-CSRF-Token``)
that is an HMAC of the caller's identity (certificate fingerprint, Basic login, or the OTP page token) and of
the day, under the portal secret. Nothing is kept server-side, so any number of Parafe processes agree as long
as they share the secret: ``PARAFE_PORTAL_SECRET`` (at least 32 characters), else ``$PARAFE_HOME/portal.secret``
(created on first use, mode 0600). A token is accepted on the day it was made and the next. In addition, a POST
whose ``Origin`` header names another site is refused (browsers send it on every cross-site POST).

Headers: ``Content-Security-Policy`` (scripts only from the portal's own static files — no inline script, no
``eval``; ``wasm-unsafe-eval`` for pdf.js's image decoders; ``connect-src`` also allows the signing helper on
the loopback interface), ``X-Content-Type-Options``, ``Referrer-Policy``, ``X-Frame-Options``,
``Permissions-Policy`` and ``Cache-Control: no-store`` for pages that carry personal data.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from parafe.domain.errors import E, ParafeError
from parafe.security.asgi_types import ASGIApp, Message, Receive, Scope, Send

_lock = threading.Lock()
_secrets: dict[str, bytes] = {}

CSP_DIRECTIVES: dict[str, str] = {
    "default-src": "'none'",
    "script-src": "'self' 'wasm-unsafe-eval'",
    "style-src": "'self'",
    "img-src": "'self' data: blob:",
    "font-src": "'self' data:",
    "connect-src": "'self' http://127.0.0.1:* http://localhost:*",
    "worker-src": "'self' blob:",
    "manifest-src": "'self'",
    "form-action": "'self'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "object-src": "'none'",
}


def content_security_policy(form_action_extra: str | None = None) -> str:
    """The CSP header value; ``form_action_extra`` adds an origin to ``form-action`` (the OTP page redirects
    to the business software after the form is posted, and browsers check form-action on redirects)."""
    directives = dict(CSP_DIRECTIVES)
    if form_action_extra:
        directives["form-action"] = f"'self' {form_action_extra}"
    return "; ".join(f"{k} {v}" for k, v in directives.items())


def origin_of(url: str | None) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, or None."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in parts.netloc for c in " ;'\","):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def portal_secret(home: Path) -> bytes:
    """The HMAC key of the portal (see the module docstring)."""
    configured = os.environ.get("PARAFE_PORTAL_SECRET", "")
    if configured:
        if len(configured) < 32:
            raise RuntimeError("PARAFE_PORTAL_SECRET doit comporter au moins 32 caractères")
        return configured.encode()
    key = str(home)
    with _lock:
        cached = _secrets.get(key)
        if cached is not None:
            return cached
        path = home / "portal.secret"
        if not path.exists():
            # written aside then hard-linked into place: another server process never reads a half-written
            # file, and the first link wins (the others read the winner's secret)
            tmp = home / f".portal.secret.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_urlsafe(48) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        value = path.read_text().strip().encode()
        if len(value) < 32:
            raise RuntimeError(f"{path} : secret trop court")
        _secrets[key] = value
        return value


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d")


def _mac(secret: bytes, subject: str, day: str) -> str:
    digest = hmac.new(secret, f"csrf|{day}|{subject}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def csrf_token(secret: bytes, subject: str, now: datetime | None = None) -> str:
    """The token of ``subject`` for today: ``<day>.<mac>``."""
    day = _day(now or datetime.now(UTC))
    return f"{day}.{_mac(secret, subject, day)}"


def check_csrf(secret: bytes, subject: str, token: str | None, now: datetime | None = None) -> None:
    """Raise ``PORTAL_CSRF`` unless ``token`` is today's or yesterday's token of ``subject``."""
    now = now or datetime.now(UTC)
    if token:
        day, _, mac = token.strip().partition(".")
        if day in (_day(now), _day(now - timedelta(days=1))) and hmac.compare_digest(mac, _mac(secret, subject, day)):
            return
    raise ParafeError(E.PORTAL_CSRF, detail="missing or invalid CSRF token")


def check_origin(headers: MutableMapping[str, str] | Any, host: str | None) -> None:
    """Refuse a request whose ``Origin`` (or, without it, ``Referer``) names another host than ``host``."""
    origin = headers.get("origin") or None
    if origin is None:
        referer = headers.get("referer")
        origin = origin_of(referer) if referer else None
    if origin is None or origin == "null":  # "null": privacy settings, no-referrer pages; the token decides
        return
    if host is None or urlsplit(origin).netloc.lower() != host.lower():
        raise ParafeError(E.PORTAL_CSRF, detail=f"foreign Origin {origin}")


BASE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"cross-origin-opener-policy", b"same-origin-allow-popups"),
)


class SecurityHeaders:
    """Adds the security headers to every portal response (a route may set its own CSP or Referrer-Policy)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.csp = content_security_policy().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                for name, value in BASE_HEADERS:
                    if name not in present:
                        headers.append((name, value))
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", self.csp))
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, wrapped)
