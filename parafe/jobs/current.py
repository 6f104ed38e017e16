"""The application context the job bodies of this process run with.

A worker sets it when it starts (:class:`parafe.jobs.runtime.WorkerRuntime`); the huey tasks
(:mod:`parafe.jobs.tasks`) read it. A process that runs a task without having started a worker gets a context
built from its settings.
"""

from __future__ import annotations

import threading

from parafe.context import AppContext

_lock = threading.Lock()
_context: AppContext | None = None


def set_context(ctx: AppContext | None) -> AppContext | None:
    """Install ``ctx`` as this process's context; returns the previous one (``None`` clears it)."""
    global _context
    with _lock:
        previous, _context = _context, ctx
    return previous


def current_context() -> AppContext:
    """The context the tasks of this process run with (set when a worker starts)."""
    global _context
    with _lock:
        if _context is None:
            from parafe.config import get_settings

            _context = AppContext.from_settings(get_settings())
        return _context
