"""Fixtures of the reliability tests: the channel tests' app factory, clients and agents
folder (imported so pytest finds them here too), and the servers the fault tests own: a
Redis to kill, a recording Graph API, a scripted model, and a client of the module's ``app``."""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from tests.channels.conftest import agents_dir, client_for, make_app
from tests.support.messaging import PlatformServer
from tests.support.model_servers import ScriptedOpenAIServer
from tests.support.own_redis import OwnRedis

__all__ = ["agents_dir", "client_for", "make_app"]


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def graph() -> Iterator[PlatformServer]:
    with PlatformServer() as server:
        yield server


@pytest.fixture
def model() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as server:
        yield server


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the module's ``app`` fixture, patient enough for runs across an outage."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=60
    ) as http:
        yield http
