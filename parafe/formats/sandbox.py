"""Run the parsing of an untrusted file in a child process whose memory and CPU time are bounded (issue 18).

A hostile document (a PDF of a million empty pages, a deep object tree) can make a parser take gigabytes; done
in a server process, that memory stays with it after the request (the C++ allocator keeps it) and the GIL-bound
parsing stalls the event loop. :func:`run` instead calls ``func(*args)`` in a *checker*: a child process forked
from a forkserver (started once, with the parsing modules already imported), whose address space is limited
(``RLIMIT_AS``) and whose CPU time is limited per call (``RLIMIT_CPU``). A checker answers one call at a time and
is kept for the next one while it stays small (a call costs a pipe round trip); after a call that raised its
peak memory by more than ``RECYCLE_KIB`` — or that failed — it exits, and whatever it needed goes back to the
system. A checker that dies (out of memory, killed by the CPU limit) or does not answer in time is reported as
:class:`SandboxExceeded` (and killed).

``func`` must be a module-level function (it is pickled by reference) returning a picklable value; a
:class:`~parafe.domain.errors.ParafeError` it raises is raised again in the caller. At most
``MAX_CONCURRENT`` checkers per server process work at once (each may use up to its memory limit).
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
RECYCLE_KIB = 64 * 1024  # a checker whose peak grew by more than this leaves after its answer
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


def _peak_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _call(func: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
    try:
        return ("ok", func(*args))
    except ParafeError as error:
        return ("error", error.error.key, error.detail, error.params)
    except MemoryError:
        return ("exceeded", "memory")


def _serve(conn: multiprocessing.connection.Connection, memory_bytes: int, recycle_kib: int) -> None:
    """A checker: under ``RLIMIT_AS``, runs one call per request; each call gets its own CPU-time budget (the
    soft ``RLIMIT_CPU`` moved to what the process has used so far plus the budget). It leaves — and gives its
    memory back — after a call that raised its peak memory by more than ``recycle_kib``, or that failed."""
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        baseline = _peak_kib()
        while True:
            try:
                func, args, cpu_seconds = conn.recv()
            except (EOFError, OSError):
                break
            usage = resource.getrusage(resource.RUSAGE_SELF)
            spent = int(usage.ru_utime + usage.ru_stime) + 1
            hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
            soft = spent + cpu_seconds if hard == resource.RLIM_INFINITY else min(spent + cpu_seconds, hard)
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
            result = _call(func, args)
            leaving = result[0] != "ok" or _peak_kib() - baseline > recycle_kib
            conn.send((leaving, *result))
            if leaving:
                break
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            conn.send((True, "crash", f"{exc.__class__.__name__}: {exc}"))
    finally:
        conn.close()
        os._exit(0)  # no atexit handlers, no flush of anything inherited


class _Checker:
    """A checker process and the parent's end of its pipe."""

    def __init__(self, memory_mb: int) -> None:
        ctx = _mp_context()
        self.memory_mb = memory_mb
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = _Process(target=_serve, args=(child, memory_mb * 1024 * 1024, RECYCLE_KIB), daemon=True)
        with _start_lock:
            self.process.start()
        child.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.process.is_alive():
            self.process.join(1)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()


_idle: list[_Checker] = []


def _take(memory_mb: int) -> _Checker:
    with _lock:
        while _idle:
            checker = _idle.pop()
            if checker.memory_mb == memory_mb and checker.process.is_alive():
                return checker
            checker.close()
    return _Checker(memory_mb)


def _give_back(checker: _Checker) -> None:
    with _lock:
        if len(_idle) < MAX_CONCURRENT:
            _idle.append(checker)
            return
    checker.close()


def _ask(checker: _Checker, request: tuple[Any, ...], wait: float) -> tuple[Any, ...]:
    checker.conn.send(request)
    if not checker.conn.poll(wait):
        raise SandboxExceeded(f"no answer within {wait:.0f} s")
    try:
        answer: tuple[Any, ...] = checker.conn.recv()
    except (EOFError, OSError):
        checker.process.join(1)
        raise SandboxExceeded(f"the checking process died (exit code {checker.process.exitcode})") from None
    return answer


def run(func: Callable[..., Any], *args: Any, memory_mb: int, cpu_seconds: int, timeout: float | None = None) -> Any:
    """``func(*args)`` in a bounded checker process (see the module docstring); blocks the calling thread (call
    it from a worker thread, never on the event loop)."""
    wait = timeout if timeout is not None else cpu_seconds * 2 + 10
    with _slots:
        checker = _take(memory_mb)
        try:
            try:
                answer = _ask(checker, (func, args, cpu_seconds), wait)
            except (BrokenPipeError, ConnectionResetError):  # an idle checker that went away: a new one
                checker.close()
                checker = _Checker(memory_mb)
                answer = _ask(checker, (func, args, cpu_seconds), wait)
        except BaseException:
            checker.close()
            raise
        leaving, *result = answer
        if leaving:
            checker.close()
        else:
            _give_back(checker)
    status = result[0]
    if status == "ok":
        return result[1]
    if status == "error":
        _, key, detail, params = result
        raise ParafeError(catalogue()[key], detail=detail, **params)
    if status == "exceeded":
        raise SandboxExceeded("memory limit reached")
    raise SandboxExceeded(f"the checking process failed: {result[1]}")
