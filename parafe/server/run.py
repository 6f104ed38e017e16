"""``parafe serve``: uvicorn over HTTPS with client-certificate support, or plain HTTP behind a proxy.

With ``--workers N`` (``PARAFE_WORKERS``) N processes are forked (the work is CPU-bound Python: one process per
core); the parent accepts the connections and hands each one to the child with the fewest open connections
(:mod:`parafe.server.dispatch`: a shared listening socket left 8 keep-alive clients split 6/2). Each process
builds its own application context (database pools must not cross a fork). The jobs (``PARAFE_WORKER_IN_PROCESS``)
run in one more child, the job process (executors and periodic tasks, as ``parafe worker``), which the parent
restarts when it dies: in the server processes, the executors' Python work held the interpreter lock against
the requests (issue 17: 66.7 → 77.9 documents/s end to end). With one process, the jobs run in its threads. The
parent forwards SIGINT/SIGTERM to the children and exits when they have.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from parafe.app import create_app
from parafe.config import Settings
from parafe.context import AppContext
from parafe.server.dispatch import Dispatcher, adopt_connections, install_signal_forwarding
from parafe.server.protocol import TLSHttpToolsProtocol
from parafe.server.tls import server_context

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
    """The embedded job worker of a single-process server (``PARAFE_WORKER_IN_PROCESS``, default on): executor
    threads and the periodic tasks."""
    if not ctx.settings.worker_in_process:
        return None
    from parafe.jobs.runtime import start_in_process_worker

    return start_in_process_worker(ctx, periodic=True)


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> bool:
    """SIGTERM to this process when the parent dies (Linux ``PR_SET_PDEATHSIG``): the server processes notice a
    killed parent by their closed hand-over channel, the job process has none. Checked once more after the call,
    in case the parent died before it: False when it did."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the job process outlives a parent killed with SIGKILL
        log.warning("the job process cannot follow its parent (no prctl)")
    return os.getppid() == parent


def _run_jobs(settings: Settings, parent: int) -> int:
    """The job process of a multi-process server: the executor threads and the periodic tasks, as
    ``parafe worker`` runs them (stopped by the SIGTERM / SIGINT the parent forwards)."""
    from parafe.composition import install_jobs
    from parafe.jobs.runtime import run_worker

    if not _die_with_parent(parent):
        return 0
    install_jobs()
    ctx = AppContext.from_settings(settings)
    try:
        return run_worker(ctx)
    finally:
        ctx.close()


def _serve_one(settings: Settings, host: str, port: int, *, tls: bool, log_level: str, jobs: bool,
               channel: socket.socket | None = None, threads: int = 40) -> None:
    ctx = AppContext.from_settings(settings)
    app = create_app(ctx)
    # Everything built so far (settings, the application, SQLAlchemy's metadata and mappers, the WSDL…) lives as
    # long as the process: keep it out of the garbage collector's scans. Measured on PROPFIND Depth 1 of 10,000
    # entries (bench/webdav.py, 100 runs): p99 210 ms → 93 ms, the full collections triggered while the listing's
    # objects were built no longer walk the whole heap.
    gc.collect()
    gc.freeze()
    kwargs: dict[str, Any] = {"host": host, "port": port, "log_level": log_level, "lifespan": "off",
                              "http": TLSHttpToolsProtocol, "timeout_keep_alive": 30, "backlog": 2048}
    if tls:
        kwargs.update(ssl_certfile=str(settings.server_cert), ssl_keyfile=str(settings.server_key))
    server = uvicorn.Server(_TLSConfig(app, ctx, **kwargs))

    async def _run() -> None:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        worker = _start_in_process_worker(ctx) if jobs else None
        adopting = asyncio.create_task(_adopt(server, channel)) if channel is not None else None
        try:
            await server.serve(sockets=[] if channel is not None else None)
        finally:
            if adopting is not None:
                adopting.cancel()
            if worker is not None:
                worker.stop()

    try:
        asyncio.run(_run())
    finally:
        ctx.close()


async def _adopt(server: uvicorn.Server, channel: socket.socket) -> None:
    """Child side of the dispatch: once uvicorn has started (without a listener of its own), serve the
    connections the parent passes on ``channel`` with uvicorn's protocol and state."""
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.01)
    config = server.config

    def make_protocol(on_closed: Callable[[], None]) -> asyncio.Protocol:
        protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=server.server_state, app_state=server.lifespan.state)
        protocol.on_closed = on_closed  # type: ignore[attr-defined]
        return protocol

    def parent_gone() -> None:
        server.should_exit = True

    adopt_connections(channel, make_protocol, config.ssl, parent_gone)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _fork(run: Callable[[], int], what: str, inherited: list[socket.socket]) -> int:
    """Fork a child that closes the parent's sockets it must not hold (``inherited``), runs ``run`` with the
    default SIGINT handler and exits with its code (1, logged, when it raised); the child's pid."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for sock in inherited:
                sock.close()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            code = run()
        except KeyboardInterrupt:
            pass
        except BaseException:
            log.exception("%s failed", what)
            code = 1
        finally:
            os._exit(code)
    return pid


def serve(settings: Settings, host: str, port: int, *, tls: bool = True, workers: int = 1,
          log_level: str = "info") -> None:
    """Run the server until interrupted (``workers`` processes sharing one listening socket)."""
    if workers <= 1:
        _serve_one(settings, host, port, tls=tls, log_level=log_level, jobs=True)
        return
    sock = _listen(host, port)
    pids: list[int] = []
    channels: list[socket.socket] = []
    parent = os.getpid()
    for index in range(workers):
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

        def serve_child(channel: socket.socket = child_end) -> int:
            _serve_one(settings, host, port, tls=tls, log_level=log_level, jobs=False, channel=channel)
            return 0

        pids.append(_fork(serve_child, f"server process {index}", [sock, parent_end, *channels]))
        child_end.close()
        channels.append(parent_end)

    def fork_jobs() -> int:
        return _fork(lambda: _run_jobs(settings, parent), "the job process", [sock, *channels])

    # the jobs run in a process of their own, not in the servers'
    dispatcher = Dispatcher(sock, channels, pids, jobs=fork_jobs if settings.worker_in_process else None)
    install_signal_forwarding(dispatcher)
    if not dispatcher.run() and not dispatcher.stopping:
        raise SystemExit("un processus serveur s'est arrêté en erreur (voir le journal ci-dessus)")
