"""Apps over a temporary agents folder, reached through httpx's ASGI transport.

Each test gets its own runtime (in-memory state unless it asks for SQLite), its own app and
its own scripted model server; agents registered through the API may use the tools in
``tests.support`` and models on loopback (``TEST_REGISTRATION_ENV``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from astromesh.auth import KeyStore
from astromesh.channels import ServerSettings, create_app
from astromesh.channels.services import Services
from astromesh.runtime import AgentRuntime
from astromesh.stores.base import StateBackend
from astromesh.stores.memory import MemoryBackend

TEST_TOOL_MODULES = ("tests.support",)
TEST_REGISTRATION_ENV = {
    # The scripted model servers listen on loopback, and the tests register agents with
    # Python tools from tests.support: grants a production policy would not give.
    "ASTROMESH_REGISTRATION_MODEL_HOSTS": "127.0.0.1",
    "ASTROMESH_REGISTRATION_TOOL_TYPES": "builtin,webhook,rag,agent,client,python",
}


@pytest.fixture
def agents_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "agents"
    folder.mkdir()
    return folder


class AppFactory:
    """Builds apps (several may share one state store, like Lambda instances) and closes them."""

    def __init__(self, agents_dir: Path) -> None:
        self.agents_dir = agents_dir
        self.runtimes: list[AgentRuntime] = []
        self.apps: list[FastAPI] = []

    def __call__(
        self,
        *,
        state: StateBackend | None = None,
        env: dict[str, str] | None = None,
        **settings: Any,
    ) -> FastAPI:
        settings.setdefault("registered_tool_modules", TEST_TOOL_MODULES)
        if state is None and env is None:
            state = MemoryBackend()
        runtime = AgentRuntime(
            self.agents_dir, env={**TEST_REGISTRATION_ENV, **(env or {})}, state=state
        )
        app = create_app(runtime, ServerSettings(**settings))
        self.runtimes.append(runtime)
        self.apps.append(app)
        return app

    async def close(self) -> None:
        for app in self.apps:
            await services(app).aclose()
        for runtime in self.runtimes:
            await runtime.close()


def services(app: FastAPI) -> Services:
    return app.state.services


async def keys_of(app: FastAPI) -> KeyStore:
    return await services(app).keys()


@pytest.fixture
async def make_app(agents_dir: Path) -> AsyncIterator[AppFactory]:
    factory = AppFactory(agents_dir)
    yield factory
    await factory.close()


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []

    def make(app: FastAPI, **headers: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
        )
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.aclose()


async def wait_for(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``(event, data)`` pairs of a Server-Sent Events body."""
    import json

    frames: list[tuple[str, dict[str, Any]]] = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        frames.append((fields["event"], json.loads(fields["data"])))
    return frames
