"""Connection dispatch for ``parafe serve --workers N``: the parent accepts, each child serves what it is given.

With one listening socket shared by N processes, the kernel hands a new connection to whichever process wakes
first, and keep-alive clients stay where they landed: measured with 8 keep-alive clients and 2 processes, one
process held 6 connections and the other 2, so one core did three quarters of the work. Like Node's cluster
module (its default "round-robin" mode), the parent process accepts every connection and passes its file
descriptor (``SCM_RIGHTS`` over a Unix socket pair) to the child that has the fewest open connections; a child
writes one byte back on that pair when a connection it was given closes.

Parent side: :class:`Dispatcher`. Child side: :func:`adopt_connections`, run inside the child's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import selectors
import signal
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_CLOSED = b"x"  # child → parent: one connection closed
_TAKE = b"c"  # parent → child: one descriptor attached
_MAX_FDS = 32
_JOBS_RESTART_DELAY = 2.0  # seconds between two starts of the job process


class Dispatcher:
    """Accepts on ``listener`` and gives each connection to the least-loaded live child."""

    def __init__(self, listener: socket.socket, channels: list[socket.socket], pids: list[int], *,
                 jobs: Callable[[], int] | None = None) -> None:
        self.listener = listener
        self.channels = channels
        self.pids = pids
        self.active = [0] * len(pids)
        self.alive = [True] * len(pids)
        self.stopping = False
        self.statuses: dict[int, int] = {}  # wait statuses of the children already reaped
        self._selector = selectors.DefaultSelector()
        # the job process (parafe.server.run): forked by ``jobs``, given no connection, restarted when it dies
        self._fork_jobs = jobs
        self.jobs_pid: int | None = jobs() if jobs is not None else None
        self._jobs_started = time.monotonic()

    def stop(self, signum: int) -> None:
        """Stop accepting and forward ``signum`` to the children (called from a signal handler)."""
        self.stopping = True
        for index, pid in enumerate(self.pids):
            if self.alive[index]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
        if self.jobs_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.jobs_pid, signum)

    def run(self) -> bool:
        """Dispatch until every child has exited (or closed its channel), then wait for them; True when they all
        ended with status 0."""
        self.listener.setblocking(False)
        self._selector.register(self.listener, selectors.EVENT_READ, None)
        for index, channel in enumerate(self.channels):
            channel.setblocking(False)
            self._selector.register(channel, selectors.EVENT_READ, index)
        listening = True
        while any(self.alive):
            if self.stopping and listening:
                self._selector.unregister(self.listener)
                self.listener.close()
                listening = False
            try:
                events = self._selector.select(timeout=0.5)
            except InterruptedError:
                continue
            for key, _mask in events:
                if key.data is None:
                    if listening:
                        self._accept()
                else:
                    self._from_child(key.data)
            self._reap()
        if listening:
            self.listener.close()
        self._selector.close()
        if self.jobs_pid is not None and not self.stopping:  # the servers are gone: the jobs go with them
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.jobs_pid, signal.SIGTERM)
        for pid in [*self.pids, *([self.jobs_pid] if self.jobs_pid is not None else [])]:
            # a child that closed its channel may still be finishing its requests (the job process its batch)
            with contextlib.suppress(ChildProcessError):
                _pid, status = os.waitpid(pid, 0)
                self.statuses[pid] = status
        return all(status == 0 for status in self.statuses.values())

    def _accept(self) -> None:
        while not self.stopping:
            try:
                conn, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: leave it in the backlog, retry on the next wake-up
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("accept failed: %s", exc)
                return
            with conn:
                self._hand_over(conn)

    def _hand_over(self, conn: socket.socket) -> None:
        full: set[int] = set()  # children whose channel is full right now (not reading: overloaded)
        while True:
            candidates = [i for i, up in enumerate(self.alive) if up and i not in full]
            if not candidates:
                if full:
                    log.warning("every server process is saturated: connection dropped")
                return
            target = min(candidates, key=self.active.__getitem__)
            try:
                socket.send_fds(self.channels[target], [_TAKE], [conn.fileno()])
            except BlockingIOError:
                full.add(target)
                continue
            except OSError:
                self._lost(target)
                continue
            self.active[target] += 1
            return

    def _from_child(self, index: int) -> None:
        try:
            data = self.channels[index].recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._lost(index)
            return
        self.active[index] = max(0, self.active[index] - data.count(_CLOSED))

    def _lost(self, index: int) -> None:
        if self.alive[index]:
            self.alive[index] = False
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self.channels[index])
            self.channels[index].close()

    def _reap(self) -> None:
        for index, pid in enumerate(self.pids):
            if not self.alive[index]:
                continue
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done == pid:
                self.statuses[pid] = status
                self._lost(index)
        self._reap_jobs()

    def _reap_jobs(self) -> None:
        """Restart the job process when it died while the server runs (at most once per ``_JOBS_RESTART_DELAY``
        seconds: a process that cannot start does not spin)."""
        if self._fork_jobs is None:
            return
        if self.jobs_pid is not None:
            try:
                done, status = os.waitpid(self.jobs_pid, os.WNOHANG)
            except ChildProcessError:
                done, status = self.jobs_pid, 0
            if done != self.jobs_pid:
                return
            if self.stopping:
                self.statuses[self.jobs_pid] = status
            else:  # replaced below: its status does not make the server's
                log.error("le processus des tâches (pid %s) s'est arrêté (statut %s) : il est relancé",
                          self.jobs_pid, status)
            self.jobs_pid = None
        if not self.stopping and time.monotonic() - self._jobs_started >= _JOBS_RESTART_DELAY:
            self.jobs_pid = self._fork_jobs()
            self._jobs_started = time.monotonic()


def install_signal_forwarding(dispatcher: Dispatcher) -> None:
    def _forward(signum: int, _frame: Any) -> None:
        dispatcher.stop(signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)


def adopt_connections(
    channel: socket.socket, make_protocol: Callable[[Callable[[], None]], asyncio.Protocol],
    ssl_context: ssl.SSLContext | None, on_parent_gone: Callable[[], None],
) -> None:
    """Serve the connections the parent passes on ``channel`` in the running loop. ``make_protocol(on_closed)``
    builds a connection's protocol, which calls ``on_closed`` when its connection closes."""
    loop = asyncio.get_running_loop()
    channel.setblocking(False)
    pending: set[asyncio.Task[None]] = set()  # handshakes in progress (the loop keeps only weak references)

    def notify_closed() -> None:
        with contextlib.suppress(OSError):
            channel.send(_CLOSED)

    async def adopt(conn: socket.socket) -> None:
        try:
            await loop.connect_accepted_socket(lambda: make_protocol(notify_closed), conn, ssl=ssl_context)
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError):
            conn.close()
            notify_closed()

    def on_readable() -> None:
        while True:
            try:
                message, fds, _flags, _addr = socket.recv_fds(channel, 256, _MAX_FDS)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message, fds = b"", []
            if not message and not fds:
                loop.remove_reader(channel.fileno())
                on_parent_gone()
                return
            for fd in fds:
                conn = socket.socket(fileno=fd)
                conn.setblocking(False)
                task = loop.create_task(adopt(conn))
                pending.add(task)
                task.add_done_callback(pending.discard)

    loop.add_reader(channel.fileno(), on_readable)
