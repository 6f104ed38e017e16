"""Waking the job workers when outbox rows are committed, instead of letting them sleep-poll (issue 17).

Each running worker (:class:`parafe.jobs.runtime.WorkerRuntime`) has a :class:`Bell`: its executor threads wait
on it when nothing is due, for at most the dispatch interval (the fallback that finds delayed rows, retries and
rows committed on another machine). :func:`ring` is called right after a workflow transaction commits
(:func:`parafe.jobs.runtime.kick`): it rings the bells of this process, then sends one datagram to every other
worker process of the same home. A worker process listens on a Linux abstract Unix socket whose name is
registered as an empty file in ``$PARAFE_HOME/run/wake/``; a name whose process is gone is removed by the
first ring that finds it refused. Ringing costs a directory listing and a ``sendto`` per worker: no database
write and no queue message on the deposit's path.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

_lock = threading.Lock()
_local: dict[str, list[Bell]] = {}  # home -> the bells of this process's workers
_sender: socket.socket | None = None


class Bell:
    """A generation counter the executor threads wait on (no wake-up is lost between a look and a wait)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    def generation(self) -> int:
        with self._cond:
            return self._generation

    def ring(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Return when rung after generation ``seen`` was read, or after ``timeout`` seconds."""
        with self._cond:
            if self._generation == seen:
                self._cond.wait(timeout)


def wake_dir(home: Path) -> Path:
    return home / "run" / "wake"


def _address(home: Path, name: str) -> bytes:
    tag = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]
    return f"\0parafe-wake-{tag}-{name}".encode()


class Listener:
    """This process's wake socket for ``home``: each datagram rings ``bell``."""

    def __init__(self, home: Path, bell: Bell) -> None:
        self.home = home
        self.bell = bell
        self.name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(_address(home, self.name))
        self._sock.settimeout(1.0)  # the thread checks now and then whether it was closed
        directory = wake_dir(home)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / self.name).touch()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="parafe-wake", daemon=True)
        self._thread.start()
        with _lock:
            _local.setdefault(str(home), []).append(bell)

    def _loop(self) -> None:
        while not self._closed:
            try:
                self._sock.recv(64)
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._closed:
                self.bell.ring()

    def close(self) -> None:
        """Unregister, wake the listening thread (a datagram to itself), wait for it, then close the socket (a
        socket closed under a thread blocked on it would leave that thread reading whatever reuses the fd)."""
        self._closed = True
        with _lock:
            bells = _local.get(str(self.home), [])
            if self.bell in bells:
                bells.remove(self.bell)
        with contextlib.suppress(OSError):
            (wake_dir(self.home) / self.name).unlink()
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as poke:
            poke.sendto(b"!", _address(self.home, self.name))
        self._thread.join(timeout=5)
        self._sock.close()


def listen(home: Path, bell: Bell) -> Listener | None:
    """Register ``bell`` for the rings of ``home`` (None where abstract Unix sockets do not exist: the
    workers then poll at the dispatch interval)."""
    try:
        return Listener(home, bell)
    except OSError:
        log.info("wake socket unavailable; the workers poll the outbox", exc_info=True)
        return None


def ring(home: Path) -> None:
    """Wake every worker of ``home``: this process's at once, the others' by a datagram (best effort)."""
    global _sender
    with _lock:
        bells = list(_local.get(str(home), []))
        if _sender is None:
            _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            _sender.setblocking(False)
        sender = _sender
    for bell in bells:
        bell.ring()
    directory = wake_dir(home)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        try:
            sender.sendto(b"!", _address(home, name))
        except BlockingIOError:  # its queue is full: it is awake already
            continue
        except (ConnectionRefusedError, FileNotFoundError):  # the process is gone
            with contextlib.suppress(OSError):
                (directory / name).unlink()
        except OSError:
            continue
