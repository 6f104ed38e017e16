"""FastAPI dependencies of the REST connector: the application context and the authenticated principal."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from parafe.services.auth import Principal, RequestIdentity, authenticate
from parafe.services.context import AppContext


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def get_principal(request: Request) -> Principal:
    """The caller, or a ParafeError rendered as a 401 JSON error."""
    identity: RequestIdentity = request.scope.get("state", {}).get("identity") or RequestIdentity()
    return await run_in_threadpool(authenticate, get_ctx(request), identity)
