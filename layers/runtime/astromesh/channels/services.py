"""Everything a route needs, built once per app and reached through FastAPI dependencies.

The control plane (agent registry, API keys) lives in the same durable store as the runs
and is opened on first use: ``httpx``'s ASGI transport and Mangum (with ``lifespan="off"``,
so a Lambda invocation does not start up and shut down the app each time) never run a
lifespan, and the first request should not need one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from starlette.requests import HTTPConnection

from astromesh.auth import KeyStore, key_store_for
from astromesh.channels.catalog import AgentCatalog
from astromesh.channels.launcher import RunLauncher
from astromesh.channels.settings import ServerSettings
from astromesh.errors import ConfigurationError
from astromesh.registry import AgentRegistry, registry_for
from astromesh.runtime import POSTGRES_DSN_ENV, AgentRuntime
from astromesh.stores.base import StateBackend

logger = logging.getLogger(__name__)


@dataclass
class ControlPlane:
    """The registry and key store, and the backend they were opened on if it is their own."""

    registry: AgentRegistry
    keys: KeyStore
    own_backend: StateBackend | None = None


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


@dataclass
class Services:
    """The runtime, settings and the per-app helpers built on them."""

    runtime: AgentRuntime
    settings: ServerSettings
    launcher: RunLauncher
    _control: ControlPlane | None = None
    _catalog: AgentCatalog | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def build(cls, runtime: AgentRuntime, settings: ServerSettings) -> Services:
        launcher = RunLauncher(
            runtime,
            max_inflight=settings.max_inflight_runs,
            standard_machine_arn=settings.standard_machine_arn,
        )
        return cls(runtime, settings, launcher)

    async def control(self) -> ControlPlane:
        if self._control is None:
            async with self._lock:
                if self._control is None:
                    control = await open_control_plane(self.runtime)
                    self._catalog = AgentCatalog(
                        self.runtime, control.registry, tool_modules=self._tool_modules()
                    )
                    self._control = control
        return self._control

    async def catalog(self) -> AgentCatalog:
        await self.control()
        assert self._catalog is not None
        return self._catalog

    async def keys(self) -> KeyStore:
        return (await self.control()).keys

    def _tool_modules(self) -> tuple[str, ...]:
        """Configured modules, or the Python packages and modules in the agents folder."""
        if self.settings.registered_tool_modules is not None:
            return self.settings.registered_tool_modules
        folder = self.runtime.agents_dir
        if not folder.is_dir():
            return ()
        return tuple(sorted(_python_names(folder)))

    async def aclose(self) -> None:
        """Stop background runs, close registered agents and any backend opened here."""
        await self.launcher.aclose()
        if self._catalog is not None:
            await self._catalog.aclose()
        if self._control is not None and self._control.own_backend is not None:
            await self._control.own_backend.close()
        self._control = self._catalog = None


def _python_names(folder: Path) -> set[str]:
    names: set[str] = set()
    for entry in folder.iterdir():
        if entry.is_dir() and (entry / "__init__.py").is_file():
            names.add(entry.name)
        elif entry.suffix == ".py" and entry.stem.isidentifier():
            names.add(entry.stem)
    return names


def services_of(connection: HTTPConnection) -> Services:
    """The app's services, from a request or a WebSocket."""
    services: Services = connection.app.state.services
    return services


async def get_services(request: Request) -> Services:
    """FastAPI dependency. ``async`` on purpose: FastAPI runs a plain ``def`` dependency in
    a worker thread, a thread hop that cost more than the rest of a health request."""
    return services_of(request)


async def get_catalog(request: Request) -> AgentCatalog:
    return await services_of(request).catalog()
