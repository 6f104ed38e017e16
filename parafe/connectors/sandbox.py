"""``X-Parafe-Sandbox: 1`` on every answer given in sandbox mode (issue 21, :mod:`parafe.services.admin.sandbox`).

The whole server is a sandbox with ``parafe serve --sandbox`` (``PARAFE_SANDBOX``); otherwise the answers to a
client certificate bound to an account of a sandbox subscriber (``parafe admin subscriber sandbox``) are marked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from parafe.context import AppContext
from parafe.security.asgi_types import Scope

HEADER = (b"x-parafe-sandbox", b"1")


class SandboxMarker:
    def __init__(self, app: Callable[..., Awaitable[None]], ctx: AppContext) -> None:
        self.app = app
        self.ctx = ctx

    def _marked(self, scope: Scope) -> bool:
        if self.ctx.settings.sandbox:
            return True
        identity = (scope.get("state") or {}).get("identity")
        fingerprint = getattr(getattr(identity, "verdict", None), "fingerprint", None)
        if not fingerprint:
            return False
        from parafe.services.admin.sandbox import certificate_in_sandbox

        return certificate_in_sandbox(self.ctx, fingerprint)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self._marked(scope):
            await self.app(scope, receive, send)
            return

        async def marking(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*(message.get("headers") or []), HEADER]}
            await send(message)

        await self.app(scope, receive, marking)
