"""uvicorn HTTP protocol that exposes the TLS client certificate to the ASGI app.

uvicorn 0.54 does not implement the ASGI TLS extension (upstream PRs #3132/#3133 are open), so this subclass
of its httptools protocol reads the peer certificate once per connection and puts it in
``scope["extensions"]["tls"]`` (``client_cert_chain``: PEM strings, as in the ASGI TLS extension, plus
``client_cert_der``). Pinned to uvicorn 0.54; drop it when uvicorn ships the extension.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class TLSHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol + ASGI TLS extension."""

    _tls_ext: dict[str, Any] | None = None
    on_closed: Callable[[], None] | None = None  # set for connections handed over by the parent (dispatch)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            self._tls_ext = None
            return
        der = ssl_object.getpeercert(binary_form=True)
        self._tls_ext = {
            "client_cert_der": der,
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "tls_version": ssl_object.version(),
        }

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.on_closed is not None:
            self.on_closed()
            self.on_closed = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls_ext is not None:
            self.scope["extensions"] = {"tls": self._tls_ext}  # type: ignore[dict-item]
