"""The local WebSocket: ``/v1/ws/agent/{name}?session_id=`` (upstream's path and frames).

The client sends ``{"query": ...}`` or ``{"action": "run", "query", "session_id"?,
"context"?}`` to start a run and ``{"action": "cancel"}`` to stop it; the server sends the
run's events as JSON frames (``status``, ``token``, ``tool_call``, ``tool_result``,
``error``, ``done``). One run at a time per connection; a connection carries many runs.
Problems with a message are answered with an ``error`` frame and the connection stays open;
problems with the connection itself (auth, role, unknown agent) send an ``error`` frame and
close with a 4xxx code mirroring the HTTP status (4401, 4403, 4404). The agent is resolved in
the key's tenant (an admin may name another with ``?tenant=``), and so are its runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from astromesh.auth import Principal
from astromesh.channels.access import (
    TENANT_PARAM,
    WEBSOCKET_PATH,
    acting_as,
    authenticate,
    require_role,
    route_role,
    runnable_agent,
    visible_entry,
)
from astromesh.channels.errors import BadRequest
from astromesh.channels.launcher import RunInput
from astromesh.channels.security import credential, route_path, services_of
from astromesh.channels.services import Services
from astromesh.errors import AstromeshError
from astromesh.runs.events import RunEvent
from astromesh.runs.state import RunState
from astromesh.text_boundary import require_valid, require_valid_url

logger = logging.getLogger(__name__)

router = APIRouter()


@router.websocket(WEBSOCKET_PATH)
async def agent_socket(websocket: WebSocket, name: str, session_id: str = "default") -> None:
    services = services_of(websocket)
    await websocket.accept()
    try:
        # The HTTP middleware's text check, for the handshake's path and query string.
        scope = websocket.scope
        raw_path = scope.get("raw_path") or str(scope.get("path", "")).encode("utf-8", "replace")
        require_valid_url(raw_path, scope.get("query_string", b""))
        principal = await authenticate(services, credential(websocket, allow_query=True))
        path = route_path(websocket)
        require_role(principal, route_role("WEBSOCKET", path), f"the WebSocket {path}")
        principal = acting_as(principal, websocket.query_params.get(TENANT_PARAM))
        await visible_entry(await services.catalog(), principal, name)
    except AstromeshError as exc:
        await _send(websocket, _error(exc.code, exc.message))
        await websocket.close(code=4000 + exc.status if exc.status < 500 else 1011)
        return
    await _Connection(websocket, services, principal, name, session_id).serve()


def _error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, **extra}


async def _send(websocket: WebSocket, frame: dict[str, Any]) -> bool:
    """Send one frame; ``False`` once the client is gone."""
    try:
        await websocket.send_text(json.dumps(frame, ensure_ascii=False, default=str))
    except (WebSocketDisconnect, RuntimeError):
        return False
    return True


class _Connection:
    """One client: reads its messages, runs one run at a time, forwards the run's frames."""

    def __init__(
        self,
        websocket: WebSocket,
        services: Services,
        principal: Principal,
        agent: str,
        session_id: str,
    ) -> None:
        self.websocket = websocket
        self.services = services
        self.principal = principal
        self.agent = agent
        self.session_id = session_id
        self.run: RunState | None = None
        self.forwarding: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        try:
            while True:
                try:
                    text = await self.websocket.receive_text()
                except WebSocketDisconnect:
                    return
                try:
                    await self.handle(_parse(text))
                except AstromeshError as exc:
                    await _send(self.websocket, _error(exc.code, exc.message))
        finally:
            # The run itself carries on and is persisted; only the forwarding stops.
            if self.forwarding is not None and not self.forwarding.done():
                self.forwarding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.forwarding

    async def handle(self, message: dict[str, Any]) -> None:
        action = message.get("action", "run" if "query" in message else None)
        if action == "run":
            await self.start(message)
        elif action == "cancel":
            await self.cancel()
        else:
            raise BadRequest(
                f"unknown action {action!r}: send {{'query': ...}}, {{'action': 'run', ...}}"
                " or {'action': 'cancel'}"
            )

    async def start(self, message: dict[str, Any]) -> None:
        if self.busy:
            raise BadRequest("a run is in progress on this connection; cancel it or wait")
        query = message.get("query")
        if not isinstance(query, str) or not query.strip():
            raise BadRequest("'query' must be a non-empty string")
        agent_name = message.get("agent", self.agent)
        if agent_name != self.agent:
            raise BadRequest(f"this connection serves agent {self.agent!r}, not {agent_name!r}")
        session_id = message.get("session_id") or self.session_id
        context = message.get("context")
        if not isinstance(session_id, str) or not isinstance(context, dict | None):
            raise BadRequest("'session_id' must be a string and 'context' an object")
        agent = await runnable_agent(await self.services.catalog(), self.principal, self.agent)
        self.run, events = await self.services.launcher.start_stream(
            agent, RunInput(query, session_id, context, self.principal.tenant)
        )
        self.forwarding = asyncio.create_task(self.forward(events))

    async def forward(self, events: AsyncIterator[RunEvent]) -> None:
        async for event in events:
            if not await _send(self.websocket, event.frame()):
                return

    async def cancel(self) -> None:
        if not self.busy or self.run is None:
            raise BadRequest("no run in progress on this connection")
        run = await self.services.launcher.cancel(self.run.id)
        await _send(
            self.websocket,
            {"type": "status", "status": "cancelling", "agent": self.agent, "run_id": run.id},
        )

    @property
    def busy(self) -> bool:
        return self.forwarding is not None and not self.forwarding.done()


def _parse(text: str) -> dict[str, Any]:
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"message is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("message is not valid JSON: nested too deeply") from None
    if not isinstance(message, dict):
        raise BadRequest("message must be a JSON object")
    require_valid(message)  # 422-like error frame invalid_text, naming the field
    return message
