"""``parafe serve``: uvicorn over HTTPS with client-certificate support, or plain HTTP behind a proxy."""

from __future__ import annotations

import logging
from typing import Any

import uvicorn

from parafe.app import create_app
from parafe.server.protocol import TLSHttpToolsProtocol
from parafe.server.tls import server_context
from parafe.services.context import AppContext

log = logging.getLogger(__name__)


class _TLSConfig(uvicorn.Config):
    """uvicorn config whose SSL context requests (without requiring) client certificates."""

    def __init__(self, app: Any, ctx: AppContext, **kwargs: Any) -> None:
        self._parafe_ctx = ctx
        super().__init__(app, **kwargs)

    def load(self) -> None:
        super().load()
        if self.is_ssl:
            s = self._parafe_ctx.settings
            self.ssl = server_context(s.server_cert, s.server_key, s.ca_bundle)


def _start_in_process_worker(ctx: AppContext) -> Any:
    """The embedded job worker (``PARAFE_WORKER_IN_PROCESS``, default on), when the workflow package provides it."""
    if not ctx.settings.worker_in_process:
        return None
    try:
        from parafe.jobs.runtime import start_in_process_worker  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return start_in_process_worker(ctx)


def serve(ctx: AppContext, host: str, port: int, *, tls: bool = True, workers_threads: int = 40,
          log_level: str = "info") -> None:
    """Run the server until interrupted."""
    app = create_app(ctx)
    kwargs: dict[str, Any] = {"host": host, "port": port, "log_level": log_level, "lifespan": "off",
                              "http": TLSHttpToolsProtocol, "timeout_keep_alive": 30}
    if tls:
        kwargs.update(ssl_certfile=str(ctx.settings.server_cert), ssl_keyfile=str(ctx.settings.server_key))
    config = _TLSConfig(app, ctx, **kwargs)
    server = uvicorn.Server(config)
    import anyio.to_thread

    async def _run() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = workers_threads
        worker = _start_in_process_worker(ctx)
        try:
            await server.serve()
        finally:
            if worker is not None:
                worker.stop()

    import asyncio

    asyncio.run(_run())
