"""TLS for the embedded server: a context that asks for a client certificate without requiring one.

TLS 1.2 and 1.3 only; for TLS 1.2 only the ECDHE + AEAD suites (:data:`TLS12_CIPHERS`), TLS 1.3 as OpenSSL ships it.

The TLS layer must let every client certificate through so that the application can refuse expired, revoked and
unknown-CA certificates with explicit French messages (spec §4.4) instead of a bare handshake alert. The
standard library cannot install an OpenSSL verify callback, so :func:`accept_any_client_certificate` installs one
through ``ctypes`` on the context's ``SSL_CTX`` (the callback always answers "continue"; the certificate is then
verified by :mod:`parafe.security.certcheck` on every request). The pointer is sanity-checked against values the
``ssl`` module reports; if anything does not match, the context keeps the standard behaviour (OpenSSL verifies
against the CA bundle and refuses bad certificates during the handshake) and a warning is logged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import ssl
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# TLS 1.2: forward secrecy (ECDHE) and AEAD (AES-GCM, ChaCha20-Poly1305) only, no CBC suite (issue 18).
TLS12_CIPHERS = "@SECLEVEL=2:ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"

_SSL_VERIFY_PEER = 0x01
_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def _always_ok(preverify_ok: int, store_ctx: int | None) -> int:
    if not preverify_ok and _ERR_CLEAR_ERROR is not None:
        # A failed check may have left errors in the thread's OpenSSL error queue (a signature that does not
        # verify: "ASN1 EVP lib"). The handshake goes on, but with a non-empty queue the next SSL_read that only
        # needs more bytes is reported as a fatal SSL error and asyncio drops the connection before the
        # application can answer 401 (164). The failure is overridden on purpose: forget its errors too.
        _ERR_CLEAR_ERROR()
    return 1


_CALLBACK = _VERIFY_CB(_always_ok)  # module-level: must outlive every context
_ERR_CLEAR_ERROR: Any = None  # libcrypto's ERR_clear_error, bound when the callback is installed


def _libssl() -> ctypes.CDLL | None:
    for name in ("libssl.so.3", ctypes.util.find_library("ssl")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def accept_any_client_certificate(ctx: ssl.SSLContext) -> bool:
    """Install an always-accepting verify callback on ``ctx``; True when it took effect."""
    lib = _libssl()
    if lib is None or not ssl.OPENSSL_VERSION.startswith("OpenSSL 3"):
        return False
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ptr:
        return False
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_set_verify.restype = None
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CB]
    if lib.SSL_CTX_get_options(ptr) != int(ctx.options):
        log.warning("TLS: unexpected SSL_CTX layout; keeping handshake-level client certificate checks")
        return False
    if lib.SSL_CTX_get_verify_mode(ptr) != int(ctx.verify_mode):
        log.warning("TLS: unexpected SSL_CTX layout; keeping handshake-level client certificate checks")
        return False
    global _ERR_CLEAR_ERROR
    lib.ERR_clear_error.restype = None  # exported by libcrypto, found through libssl's dependencies
    lib.ERR_clear_error.argtypes = []
    _ERR_CLEAR_ERROR = lib.ERR_clear_error
    lib.SSL_CTX_set_verify(ptr, _SSL_VERIFY_PEER, _CALLBACK)
    return ctx.verify_mode == ssl.CERT_OPTIONAL


def server_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """A TLS server context that requests (but does not require) a client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)  # TLS 1.3 suites are not affected (all AEAD)
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca is not None and client_ca.exists():
        ctx.load_verify_locations(cafile=str(client_ca))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    if not accept_any_client_certificate(ctx):
        log.warning("TLS: bad client certificates will be refused during the handshake")
    return ctx
