"""What a warm channel Lambda container keeps: one loop, the services, the hub, the gateway.

Built on the first invocation and reused by the next ones in the same container: the
runtime (agents from ``ASTROMESH_AGENTS_DIR``, the store from ``ASTROMESH_STATE_*``), the
control plane (API keys, registered agents), the channel hub (adapters, Redis guards, one
HTTP client) and the WebSocket gateway (its connection registry). One loop for the
container's life, because connections (Redis, httpx, providers) belong to the loop that
opened them and a fresh ``asyncio.run`` per invocation would strand them.

Nothing of the runtime is imported with this module: each property imports what it builds
when first used, so a handler's module load costs Powertools and this file, not the agent
runtime (docs/performance.md, "Lazy imports").
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from astromesh.channels.aws.websocket import WebSocketGateway
    from astromesh.channels.messaging.inbox import ChannelHub
    from astromesh.channels.services import Services

T = TypeVar("T")


class ChannelWorker:
    """One container's loop, :class:`Services` and :class:`ChannelHub`, made on first use."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._services: Services | None = None
        self._hub: ChannelHub | None = None
        self._gateway: WebSocketGateway | None = None

    @property
    def services(self) -> Services:
        if self._services is None:
            from astromesh.channels.services import Services
            from astromesh.channels.settings import ServerSettings
            from astromesh.runtime import AgentRuntime

            runtime = AgentRuntime()
            self._services = Services.build(runtime, ServerSettings.from_env(lambda_=True))
        return self._services

    @property
    def hub(self) -> ChannelHub:
        if self._hub is None:
            from astromesh.channels.messaging.inbox import ChannelHub

            self._hub = ChannelHub.build(self.services)
        return self._hub

    @property
    def gateway(self) -> WebSocketGateway:
        """The WebSocket routes, over a registry in ``ASTROMESH_REDIS_URL``'s Redis."""
        if self._gateway is None:
            from astromesh.channels.aws.connections import open_registry
            from astromesh.channels.aws.websocket import WebSocketGateway
            from astromesh.channels.messaging.guards import DEFAULT_PREFIX, PREFIX_ENV
            from astromesh.runtime import REDIS_URL_ENV

            registry = open_registry(
                os.environ.get(REDIS_URL_ENV),
                prefix=os.environ.get(PREFIX_ENV) or DEFAULT_PREFIX,
            )
            self._gateway = WebSocketGateway(self.services, registry)
        return self._gateway

    def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work()`` to completion on the container's loop (one invocation), then send
        the spans of the runs it served when OTLP export is on (the container may be frozen
        as soon as the handler returns)."""
        try:
            return self._loop.run_until_complete(work())
        finally:
            from astromesh.telemetry.provider import flush  # stdlib only: cheap

            flush()

    def close(self) -> None:
        """Close everything and the loop (tests that emulate containers call this)."""

        async def close() -> None:
            if self._hub is not None:
                await self._hub.aclose()
            if self._gateway is not None:
                await self._gateway.registry.aclose()
            if self._services is not None:
                await self._services.aclose()
                await self._services.runtime.close()

        self._loop.run_until_complete(close())
        self._loop.close()
