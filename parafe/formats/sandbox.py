"""Run the parsing of an untrusted file in a child process whose memory and CPU time are bounded (issue 18).

A hostile document (a PDF of a million empty pages, a deep object tree) can make a parser take gigabytes; done
in a server process, that memory stays with it after the request (the C++ allocator keeps it) and the GIL-bound
parsing stalls the event loop. :func:`run` instead calls ``func(*args)`` in a child forked from a *forkserver*
(a small process started once, that has already imported the parsing modules, so a child costs a few
milliseconds), with ``RLIMIT_AS`` (address space) and ``RLIMIT_CPU`` set in the child before it parses. The
child exits after one call: whatever it needed goes back to the system. A child that dies (out of memory,
killed by the CPU limit) or does not answer in time is reported as :class:`SandboxExceeded`.

``func`` must be a module-level function (it is pickled by reference) returning a picklable value; a
:class:`~parafe.domain.errors.ParafeError` it raises is raised again in the caller. At most
``MAX_CONCURRENT`` children per server process run at once (each may use up to its memory limit).
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import multiprocessing.connection
import os
import resource
import threading
from collections.abc import Callable
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.context import ForkServerContext, ForkServerProcess, set_spawning_popen
from typing import Any

from parafe.domain.errors import ParafeError, catalogue

log = logging.getLogger(__name__)

MAX_CONCURRENT = 2
PRELOAD = ["parafe.formats.pdf", "parafe.formats.sandbox", "pyhanko.pdf_utils.reader"]

_lock = threading.Lock()
_context: list[ForkServerContext] = []
_slots = threading.BoundedSemaphore(MAX_CONCURRENT)
_start_lock = threading.Lock()  # Process.start() walks the module's set of children: one start at a time


class SandboxExceeded(Exception):
    """The child went over its memory or CPU limit, or died without an answer."""


def _mp_context() -> ForkServerContext:
    with _lock:
        if not _context:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _context.append(ctx)
        return _context[0]


# What a child needs from its parent's state; never the parent's main module (the stdlib would run the server's
# script again in every child: `parafe` itself, a test runner…): the function is imported by its module name.
_PREPARATION_KEYS = ("sys_path", "dir", "orig_dir", "authkey", "log_to_stderr", "log_level", "start_method")


class _Popen(popen_forkserver.Popen):
    """The stdlib's forkserver launcher (Python 3.11), without the main module in the preparation data."""

    def _launch(self, process_obj: Any) -> None:
        prep_data = {k: v for k, v in spawn.get_preparation_data(process_obj._name).items()
                     if k in _PREPARATION_KEYS}
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
        _parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))  # type: ignore[attr-defined]
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _Process(ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _Popen:
        return _Popen(process_obj)


def _limit(memory_bytes: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def _child(conn: multiprocessing.connection.Connection, func: Callable[..., Any], args: tuple[Any, ...],
           memory_bytes: int, cpu_seconds: int) -> None:
    try:
        _limit(memory_bytes, cpu_seconds)
        try:
            result: tuple[Any, ...] = ("ok", func(*args))
        except ParafeError as error:
            result = ("error", error.error.key, error.detail, error.params)
        except MemoryError:
            result = ("exceeded", "memory")
        conn.send(result)
    except BaseException as exc:  # noqa: BLE001 — anything else is reported, never raised in the child
        with contextlib.suppress(BaseException):
            conn.send(("crash", f"{exc.__class__.__name__}: {exc}"))
    finally:
        conn.close()
        os._exit(0)  # no atexit handlers, no flush of anything inherited


def run(func: Callable[..., Any], *args: Any, memory_mb: int, cpu_seconds: int, timeout: float | None = None) -> Any:
    """``func(*args)`` in a bounded child process (see the module docstring); blocks the calling thread (call it
    from a worker thread, never on the event loop)."""
    ctx = _mp_context()
    wait = timeout if timeout is not None else cpu_seconds * 2 + 10
    with _slots:
        parent, child = ctx.Pipe(duplex=False)
        process = _Process(target=_child, args=(child, func, args, memory_mb * 1024 * 1024, cpu_seconds),
                           daemon=True)
        with _start_lock:
            process.start()
        child.close()
        try:
            if not parent.poll(wait):
                raise SandboxExceeded(f"no answer within {wait:.0f} s")
            try:
                result = parent.recv()
            except (EOFError, OSError):
                raise SandboxExceeded(f"the checking process died (exit code {process.exitcode})") from None
        finally:
            parent.close()
            if process.is_alive():
                process.join(1)
            if process.is_alive():
                process.kill()
            process.join()
    status = result[0]
    if status == "ok":
        return result[1]
    if status == "error":
        _, key, detail, params = result
        raise ParafeError(catalogue()[key], detail=detail, **params)
    if status == "exceeded":
        raise SandboxExceeded("memory limit reached")
    raise SandboxExceeded(f"the checking process failed: {result[1]}")
