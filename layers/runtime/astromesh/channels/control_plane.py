"""The control plane (agent registry and API keys) and the catalog built on it, without FastAPI.

The HTTP app and the step loop's Lambda workers both resolve agents by name the same way:
registered through the API first, then the agents folder. They open it here, so a run of a
registered agent that the ``api`` function hands to a state machine is found again by the
``orchestration_step`` and ``tool_executor`` functions, which never import the web stack.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from astromesh.agent import Agent
from astromesh.auth import KeyStore, key_store_for
from astromesh.channels.catalog import AgentCatalog
from astromesh.channels.settings import ServerSettings
from astromesh.errors import ConfigurationError
from astromesh.registry import AgentRegistry, registry_for
from astromesh.runtime import POSTGRES_DSN_ENV, AgentRuntime
from astromesh.security import RegistrationPolicy
from astromesh.stores.base import StateBackend

if TYPE_CHECKING:
    from astromesh.executors.driver import AgentSource

logger = logging.getLogger(__name__)


@dataclass
class ControlPlane:
    """The registry and key store, and the backend they were opened on if it is their own."""

    registry: AgentRegistry
    keys: KeyStore
    own_backend: StateBackend | None = None

    async def aclose(self) -> None:
        if self.own_backend is not None:
            await self.own_backend.close()


async def open_control_plane(runtime: AgentRuntime) -> ControlPlane:
    """Registry and keys in the runtime's state store, or in PostgreSQL when that is Redis.

    Raises:
        ConfigurationError: the state store cannot hold them and no PostgreSQL is configured.
    """
    from astromesh.registry.factory import durable_kind

    state = await runtime.state()
    try:
        durable_kind(state)
    except ConfigurationError:
        dsn = runtime.env.get(POSTGRES_DSN_ENV)
        if not dsn:
            raise
        from astromesh.stores.factory import open_backend

        backend = open_backend("postgres", postgres_dsn=dsn)
        await backend.open()
        return ControlPlane(registry_for(backend), key_store_for(backend), backend)
    return ControlPlane(registry_for(state), key_store_for(state))


def registration_policy(runtime: AgentRuntime, settings: ServerSettings) -> RegistrationPolicy:
    """What agents registered through the API may use here (:mod:`astromesh.security`)."""
    return RegistrationPolicy.for_runtime(runtime, python_modules=settings.registered_tool_modules)


async def agent_source(
    runtime: AgentRuntime, settings: ServerSettings
) -> tuple[AgentSource, Callable[[], Awaitable[None]]]:
    """How a step worker finds a run's agent, as the API found it; and its closer.

    The agent is resolved by the run's agent name *in the run's tenant*: that tenant's
    registered agent, else the file agent; never another tenant's namesake. Where the state
    store holds no registry (and no PostgreSQL is configured) only the agents folder exists,
    which is what :meth:`AgentRuntime.get` serves.
    """
    try:
        control = await open_control_plane(runtime)
    except ConfigurationError as exc:
        logger.info("agents from the folder only (no registry here): %s", exc.message)

        async def nothing() -> None:
            return None

        from astromesh.executors.driver import folder_agents  # the step workers' module

        return folder_agents(runtime.get), nothing
    catalog = AgentCatalog(runtime, control.registry, policy=registration_policy(runtime, settings))

    async def get(name: str, tenant: str) -> Agent:
        return await catalog.agent(await catalog.entry(name, tenant=tenant))

    async def close() -> None:
        await catalog.aclose()
        await control.aclose()

    return get, close
