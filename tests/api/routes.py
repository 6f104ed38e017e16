"""The routes an ASGI application answers, enumerated from the application object itself (Starlette and FastAPI,
included routers and mounts flattened), for the authorization matrices: a route without its line in a matrix
fails that matrix's coverage test."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


def routes_of(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(method, path)`` pairs (HEAD left out: it follows GET); a mount is yielded as ``("MOUNT", path)``."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:  # FastAPI >= 0.165 keeps included routers as such
            context = getattr(route, "include_context", None)
            yield from routes_of(original.routes, prefix + (getattr(context, "prefix", "") or ""))
            continue
        path = prefix + getattr(route, "path", "")
        methods = getattr(route, "methods", None)
        if methods:
            for method in sorted(set(methods) - {"HEAD"}):
                yield method, path
        elif getattr(route, "app", None) is not None and hasattr(route, "routes"):
            sub = route.routes
            if sub:
                yield from routes_of(sub, path)
            else:
                yield "MOUNT", path
        else:
            yield "MOUNT", path
