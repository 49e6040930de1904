"""Serve every route with and without a trailing slash, without a redirect.

Upstream's command-line client calls ``/v1/traces/``, ``/v1/metrics/`` and, through its
FastAPI routers, paths with a trailing slash; it uses ``httpx`` without following redirects
and raises on any status that is not 2xx, so FastAPI's ``307`` to the path without the slash
is a failure to it. One trailing slash is therefore dropped from the path before routing
(``/v1/agents/`` is routed as ``/v1/agents``): every route, present and future, answers both
spellings the same way, while ``/openapi.json`` documents one. Pure ASGI, like the other
middlewares.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class TrailingSlash:
    """Route ``/v1/x/`` as ``/v1/x`` (HTTP and WebSocket); ``/`` itself is left alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = str(scope.get("path", ""))
            if len(path) > 1 and path.endswith("/"):
                scope = dict(scope)
                scope["path"] = path[:-1]
                raw_path = scope.get("raw_path")
                if isinstance(raw_path, bytes) and raw_path.endswith(b"/"):
                    scope["raw_path"] = raw_path[:-1]
        await self.app(scope, receive, send)
