"""``parafe serve``: uvicorn over HTTPS with client-certificate support, or plain HTTP behind a proxy.

With ``--workers N`` (``PARAFE_WORKERS``) the listening socket is opened once and N processes are forked to
serve it (the work is CPU-bound Python: one process per core). Each process builds its own application
context (database pools must not cross a fork); only the first one runs the embedded job worker. The parent
forwards SIGINT/SIGTERM to the children and exits when they have.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Any

import uvicorn

from parafe.app import create_app
from parafe.config import Settings
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


def _serve_one(settings: Settings, host: str, port: int, *, tls: bool, log_level: str, job_worker: bool,
               sock: socket.socket | None = None, threads: int = 40) -> None:
    ctx = AppContext.from_settings(settings)
    app = create_app(ctx)
    kwargs: dict[str, Any] = {"host": host, "port": port, "log_level": log_level, "lifespan": "off",
                              "http": TLSHttpToolsProtocol, "timeout_keep_alive": 30, "backlog": 2048}
    if tls:
        kwargs.update(ssl_certfile=str(settings.server_cert), ssl_keyfile=str(settings.server_key))
    server = uvicorn.Server(_TLSConfig(app, ctx, **kwargs))

    async def _run() -> None:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        worker = _start_in_process_worker(ctx) if job_worker else None
        try:
            await server.serve(sockets=[sock] if sock is not None else None)
        finally:
            if worker is not None:
                worker.stop()

    try:
        asyncio.run(_run())
    finally:
        ctx.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, host: str, port: int, *, tls: bool = True, workers: int = 1,
          log_level: str = "info") -> None:
    """Run the server until interrupted (``workers`` processes sharing one listening socket)."""
    if workers <= 1:
        _serve_one(settings, host, port, tls=tls, log_level=log_level, job_worker=True)
        return
    sock = _listen(host, port)
    children: list[int] = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                _serve_one(settings, host, port, tls=tls, log_level=log_level, job_worker=index == 0, sock=sock)
            except KeyboardInterrupt:
                pass
            except BaseException:
                log.exception("server process %s failed", index)
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    sock.close()

    def _forward(signum: int, _frame: Any) -> None:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    for child in children:
        while True:
            try:
                os.waitpid(child, 0)
                break
            except ChildProcessError:
                break
            except InterruptedError:
                continue
