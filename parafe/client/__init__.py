"""Typed Python client of Parafe's REST API (issue 21), for integrators: ``from parafe.client import
ParafeClient``.

It speaks REST v2 (``/parapheur-ws/rest/v1/documents/v2/…``) with the integrator's client certificate over
httpx, and imports nothing of the server stack (FastAPI, SQLAlchemy, pyHanko): it can be copied with
``parafe/domain/errors.py`` and ``parafe/domain/states.py`` into any integrator's project. The ``parafe
client …`` commands (:mod:`parafe.client.cli`) are built on it. See docs/integrators.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from parafe.client.types import Circuit, DocumentStatus, HistoryEntry, Person

if TYPE_CHECKING:
    from parafe.client.api import ParafeClient, ParafeClientError


def __getattr__(name: str) -> Any:
    """``ParafeClient`` and ``ParafeClientError`` load httpx on first use (``parafe --help`` stays cheap)."""
    if name not in ("ParafeClient", "ParafeClientError"):
        raise AttributeError(f"module 'parafe.client' has no attribute {name!r}")
    value = getattr(importlib.import_module("parafe.client.api"), name)
    globals()[name] = value
    return value

__all__ = ["Circuit", "DocumentStatus", "HistoryEntry", "ParafeClient", "ParafeClientError", "Person"]
