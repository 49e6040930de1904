"""The hostile suite's apps: an open dev app over a temporary agents folder whose only model
is the operator's (a ProviderConfig ``house`` pointing at a scripted server), with the
*secure default* registration policy unless a test widens it on purpose."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from astromesh.channels import ServerSettings, create_app
from astromesh.channels.services import Services
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from tests.support.agents import PRICED_MODEL, agent_document, write_priced_provider
from tests.support.canaries import LoopbackListener
from tests.support.model_servers import ScriptedOpenAIServer


@pytest.fixture
def agents_dir(tmp_path: Path, openai_server: ScriptedOpenAIServer) -> Path:
    folder = tmp_path / "agents"
    folder.mkdir()
    write_priced_provider(folder, openai_server.url)
    return folder


@pytest.fixture
def listener() -> Iterator[LoopbackListener]:
    with LoopbackListener() as canary:
        yield canary


class HostileApps:
    """Apps (and their clients) built with exactly the environment a test gives."""

    def __init__(self, agents_dir: Path) -> None:
        self.agents_dir = agents_dir
        self._apps: list[FastAPI] = []
        self._runtimes: list[AgentRuntime] = []
        self._clients: list[httpx.AsyncClient] = []

    def __call__(self, env: dict[str, str] | None = None, **settings: Any) -> httpx.AsyncClient:
        runtime = AgentRuntime(self.agents_dir, env=env or {}, state=MemoryBackend())
        app = create_app(runtime, ServerSettings(**settings))
        self._apps.append(app)
        self._runtimes.append(runtime)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=30
        )
        self._clients.append(client)
        return client

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
        for app in self._apps:
            services: Services = app.state.services
            await services.aclose()
        for runtime in self._runtimes:
            await runtime.close()


@pytest.fixture
async def hostile_app(agents_dir: Path) -> AsyncIterator[HostileApps]:
    apps = HostileApps(agents_dir)
    yield apps
    await apps.close()


def registered(name: str = "posted", **spec: Any) -> dict[str, Any]:
    """A document on the operator's model (allowed by the default policy)."""
    spec.setdefault("model", PRICED_MODEL)
    return agent_document(name, **spec)


RegisterFn = Callable[..., dict[str, Any]]
