"""The ASGI and WSGI type aliases, defined once for every middleware and connector.

Issue 19: five modules wrote their own ``Scope`` / ``Receive`` / ``Send`` / ``ASGIApp`` (security/identity.py,
portal/security.py, connectors/compliance.py, connectors/sandbox.py) or ``Environ`` / ``StartResponse`` (the
WebDAV connector, three times). Where they differed (identity's app took ``Any`` messages, the portal's ``Send``
took a mapping), the shapes kept are Starlette's (``starlette.types``): a message is a mutable mapping, so
Starlette's apps and ours type-check against each other. WSGI follows PEP 3333 as WsgiDAV uses it. Written
here, not imported from Starlette, so that the security layer does not depend on the web framework.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

# ASGI
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# WSGI (the WebDAV connector runs WsgiDAV)
Environ = dict[str, Any]
StartResponse = Callable[..., Any]
