"""The WebSocket protocol on API Gateway: ``$connect``, ``$disconnect``, ``$default`` and the run.

The same protocol as the local ``/v1/ws/agent/{name}`` (``channels/ws.py``), spread over
stateless invocations:

- ``$connect`` authenticates with an API key (``Authorization: Bearer``, ``x-api-key`` or
  ``?api_key=``; browsers cannot set headers on a WebSocket) against the same key store as
  the REST API, checks the role the local WebSocket needs, applies an admin's ``?tenant=``,
  checks ``?agent=`` if given (in that tenant), and registers the connection (tenant,
  agents, role, agent, ``?session_id=``, the endpoint to post to). A refusal is the REST
  error's status (401/403/404), which API Gateway turns into a refused handshake.
- ``$disconnect`` unregisters it.
- ``$default`` reads ``{"action": "run", "agent"?, "query", "session_id"?, "context"?}`` (or
  upstream's ``{"query": ...}``) and ``{"action": "cancel"}``. A run is created here and
  claimed for the connection (one at a time), then handed to an asynchronous invocation
  (:mod:`~astromesh.channels.aws.invoke`) so this one answers at once. Problems with a
  message are answered with an ``error`` frame; the connection stays open.
- The job executes the run and pushes its frames (``status``, ``token``, ``tool_call``,
  ``tool_result``, ``error``, ``done``) through a :class:`FramePusher`: tokens batched,
  frames split below 32 KB. If the client has gone (410), delivery stops and the run is
  cancelled: it stops before its next tool calls (after at most one more model call, made
  while its last checkpoint was written), and nobody pays for the rest of an answer nobody
  reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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
from astromesh.channels.aws.connections import Connection, ConnectionRegistry
from astromesh.channels.aws.frames import (
    DEFAULT_FLUSH_SECONDS,
    ConnectionGone,
    DeliveryFailed,
    FramePusher,
    Post,
    split_frame,
)
from astromesh.channels.aws.management import (
    ENDPOINT_ENV,
    ConnectionPoster,
    endpoint_of,
    management_client,
)
from astromesh.channels.errors import BadRequest, Unauthorized, error_body
from astromesh.channels.services import Services
from astromesh.errors import AstromeshError, ConflictError, NotFoundError
from astromesh.pipeline import done_frame
from astromesh.runs.state import RunState
from astromesh.text_boundary import require_valid

logger = logging.getLogger(__name__)

FLUSH_MS_ENV = "ASTROMESH_WS_FLUSH_MS"
RUN_JOB = "ws_run"

PosterFactory = Callable[[str, str], Post]
"""``(endpoint, connection_id) -> post``."""


def management_poster(endpoint: str, connection_id: str) -> Post:
    return ConnectionPoster(management_client(endpoint), connection_id)


@dataclass(frozen=True, slots=True)
class Reply:
    """What a ``$default`` invocation answers, and the job it hands off (if any)."""

    response: dict[str, Any]
    job: dict[str, Any] | None = None


class WebSocketGateway:
    """The three routes and the run job, over :class:`Services` and a registry."""

    def __init__(
        self,
        services: Services,
        registry: ConnectionRegistry,
        *,
        poster: PosterFactory = management_poster,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.services = services
        self.registry = registry
        self.poster = poster
        self.env = os.environ if env is None else env

    # -- $connect / $disconnect --------------------------------------------------------------

    async def connect(self, event: Mapping[str, Any]) -> dict[str, Any]:
        context = event["requestContext"]
        query = event.get("queryStringParameters") or {}
        try:
            require_valid(dict(query), field="query")  # API Gateway has decoded it already
            principal = await authenticate(self.services, _credential(event))
            require_role(principal, route_role("WEBSOCKET", WEBSOCKET_PATH), "a WebSocket")
            principal = acting_as(principal, query.get(TENANT_PARAM) or None)
            agent = query.get("agent") or None
            if agent is not None:
                await visible_entry(await self.services.catalog(), principal, agent)
        except AstromeshError as exc:
            logger.info("connection refused: %s %s", exc.code, exc.message)
            return _status(exc.status, error_body(exc.code, exc.message))
        await self.registry.add(
            Connection(
                connection_id=context["connectionId"],
                tenant=principal.tenant,
                agents=tuple(sorted(principal.agents)),
                endpoint=endpoint_of(context, self.env),
                key_id=principal.key_id,
                role=principal.role.value,
                agent=agent,
                session_id=query.get("session_id") or "default",
            )
        )
        return _status(200)

    async def disconnect(self, event: Mapping[str, Any]) -> dict[str, Any]:
        await self.registry.remove(event["requestContext"]["connectionId"])
        return _status(200)

    # -- $default ------------------------------------------------------------------------------

    async def message(self, event: Mapping[str, Any]) -> Reply:
        context = event["requestContext"]
        connection_id = context["connectionId"]
        connection = await self.registry.get(connection_id)
        post = self.poster(self._post_endpoint(connection, context), connection_id)
        try:
            if connection is None:
                raise Unauthorized("this connection is not registered (expired?); reconnect")
            message = _parse(event.get("body"))
            action = message.get("action", "run" if "query" in message else None)
            if action == "run":
                return Reply(_status(202), await self._start(connection, message))
            if action == "cancel":
                await self._cancel(connection, post)
                return Reply(_status(200))
            raise BadRequest(
                f"unknown action {action!r}: send {{'action': 'run', 'query': ...}}"
                " or {'action': 'cancel'}"
            )
        except AstromeshError as exc:
            await _post_frame(post, {"type": "error", "code": exc.code, "message": exc.message})
            return Reply(_status(exc.status, error_body(exc.code, exc.message)))

    async def _start(self, connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        query = message.get("query")
        if not isinstance(query, str) or not query.strip():
            raise BadRequest("'query' must be a non-empty string")
        agent_name = message.get("agent") or connection.agent
        if not isinstance(agent_name, str) or not agent_name:
            raise BadRequest("name the agent: 'agent' in the message, or ?agent= when connecting")
        session_id = message.get("session_id") or connection.session_id
        context = message.get("context")
        if not isinstance(session_id, str) or not isinstance(context, dict | None):
            raise BadRequest("'session_id' must be a string and 'context' an object")
        principal = connection.principal()
        agent = await runnable_agent(await self.services.catalog(), principal, agent_name)
        run = await self.services.runtime.create_run(
            agent, query, session_id=session_id, context=context, tenant=principal.tenant
        )
        other = await self.registry.claim_run(connection.connection_id, run.id)
        if other is not None:
            if not await self._ended(other):
                await self._discard(run)
                raise BadRequest("a run is in progress on this connection; cancel it or wait")
            await self.registry.replace_run(connection.connection_id, run.id)
        return {
            "kind": RUN_JOB,
            "connection_id": connection.connection_id,
            "run_id": run.id,
            "endpoint": self._post_endpoint(connection, None),
        }

    def _post_endpoint(
        self, connection: Connection | None, context: Mapping[str, Any] | None
    ) -> str:
        """Where this function posts frames: its own ``ASTROMESH_WS_CALLBACK_URL`` when set
        (the infra gives it to the functions that post, not to ``ws_connect``, which records
        the event's domain at ``$connect``: behind a custom domain, or locally, that is not
        the Management API), else the endpoint recorded with the connection."""
        configured = self.env.get(ENDPOINT_ENV)
        if configured:
            return configured.rstrip("/")
        if connection is not None:
            return connection.endpoint
        return endpoint_of(context or {}, self.env)

    async def _cancel(self, connection: Connection, post: Post) -> None:
        run_id = await self.registry.current_run(connection.connection_id)
        if run_id is None:
            raise BadRequest("no run in progress on this connection")
        run = await self.services.launcher.cancel(run_id)
        await _post_frame(
            post, {"type": "status", "status": "cancelling", "agent": run.agent, "run_id": run.id}
        )

    async def _ended(self, run_id: str) -> bool:
        try:
            run = await (await self.services.runtime.state()).runs.get(run_id)
        except NotFoundError:
            return True
        return run.status.is_terminal

    async def _discard(self, run: RunState) -> None:
        """End a run created for a message that lost the race for the connection."""
        with contextlib.suppress(ConflictError, NotFoundError):
            await self.services.launcher.cancel(run.id)

    async def abandon(self, job: Mapping[str, Any], reason: str) -> None:
        """A job that could not be handed off: end its run and tell the client."""
        connection_id, run_id = job["connection_id"], job["run_id"]
        with contextlib.suppress(ConflictError, NotFoundError):
            await self.services.launcher.cancel(run_id)
        await self.registry.release_run(connection_id, run_id)
        post = self.poster(job["endpoint"], connection_id)
        await _post_frame(post, {"type": "error", "code": "unavailable", "message": reason})

    # -- the job -------------------------------------------------------------------------------

    async def run_job(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """Execute the job's run, pushing its frames; release the connection at the end."""
        connection_id, run_id = job["connection_id"], job["run_id"]
        post = self.poster(job["endpoint"], connection_id)
        cancelled = False

        async def cancel_run() -> None:
            nonlocal cancelled
            if not cancelled:
                cancelled = True
                logger.info("run_id=<%s> | client gone, cancelling the run", run_id)
                with contextlib.suppress(ConflictError, NotFoundError):
                    await self.services.launcher.cancel(run_id)

        pusher = FramePusher(post, flush_seconds=self._flush_seconds(), on_gone=cancel_run)
        try:
            run = await (await self.services.runtime.state()).runs.get(run_id)
            if run.status.is_terminal:  # cancelled before the job started
                await _post_frame(post, {"type": "done", **done_frame(run)})
                return {"run_id": run_id, "status": run.status.value, "posted": 1}
            try:
                catalog = await self.services.catalog()
                agent = await catalog.agent(await catalog.entry(run.agent, tenant=run.tenant))
            except AstromeshError as exc:  # removed or broken since the run was created
                with contextlib.suppress(ConflictError, NotFoundError):
                    run = await self.services.launcher.cancel(run_id)
                await _post_frame(post, {"type": "error", "code": exc.code, "message": exc.message})
                await _post_frame(post, {"type": "done", **done_frame(run)})
                return {"run_id": run_id, "status": run.status.value, "posted": 2}
            run = await self.services.runtime.execute(run, agent, pusher.emit)
            await pusher.close()
        finally:
            await self.registry.release_run(connection_id, run_id)
        return {
            "run_id": run_id,
            "status": run.status.value,
            "posted": pusher.posted,
            "gone": pusher.gone,
        }

    def _flush_seconds(self) -> float:
        raw = self.env.get(FLUSH_MS_ENV)
        return int(raw) / 1000.0 if raw and raw.isdigit() else DEFAULT_FLUSH_SECONDS


def _credential(event: Mapping[str, Any]) -> str | None:
    """The API key of a ``$connect`` (headers first, then ``?api_key=``)."""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if headers.get("x-api-key", "").strip():
        return headers["x-api-key"].strip()
    return (event.get("queryStringParameters") or {}).get("api_key") or None


def _parse(body: str | None) -> dict[str, Any]:
    try:
        message = json.loads(body or "")
    except ValueError as exc:
        raise BadRequest(f"message is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("message is not valid JSON: nested too deeply") from None
    if not isinstance(message, dict):
        raise BadRequest("message must be a JSON object")
    require_valid(message)  # 422-like error frame invalid_text, naming the field
    return message


async def _post_frame(post: Post, frame: dict[str, Any]) -> None:
    """Post one frame outside a run (a gone client simply misses it)."""
    for data in split_frame(frame):
        try:
            await post(data)
        except (ConnectionGone, DeliveryFailed) as exc:
            logger.info("frame type=<%s> not delivered: %r", frame["type"], exc)
            return


def _status(status: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"statusCode": status}
    if body is not None:
        response["body"] = json.dumps(body)
    return response
