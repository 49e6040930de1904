"""Fixtures shared by every test package: real Redis, real PostgreSQL, scripted model servers.

The servers are found or started once per session (see ``tests/support/services.py``); each
test then gets its own slice: a unique Redis key prefix whose keys are deleted afterwards, a
PostgreSQL database per test module and a schema per test inside it. An unreachable service
fails the tests that need it with the reason, never skips them silently.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

from tests.support import services
from tests.support.model_servers import ScriptedOllamaServer, ScriptedOpenAIServer

# Every run store save checks that the elements of a run it stored earlier were not changed
# in place (astromesh.stores._journal), in this process and the servers tests start.
os.environ.setdefault("ASTROMESH_VERIFY_JOURNAL", "1")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a running Redis (``ASTROMESH_TEST_REDIS_URL`` or a local one, started if needed)."""
    try:
        return services.ensure_redis()
    except services.ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted afterwards."""
    prefix = f"astromesh-test:{uuid.uuid4().hex[:12]}"
    yield prefix
    services.delete_prefix(redis_url, prefix)


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of a PostgreSQL where pgvector is available (env DSN or the bundled pgserver)."""
    try:
        return services.ensure_postgres()
    except services.ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def postgres_database(postgres_dsn: str) -> Iterator[str]:
    """DSN of a fresh database for this test module, dropped when the module is done."""
    dsn = services.create_database(postgres_dsn)
    yield dsn
    services.drop_database(dsn)


@pytest.fixture
def postgres_schema(postgres_database: str) -> Iterator[str]:
    """DSN of the module's database with ``search_path`` set to a fresh, per-test schema."""
    name, dsn = services.create_schema(postgres_database)
    yield dsn
    services.drop_schema(postgres_database, name)


# -- model servers: real HTTP servers on 127.0.0.1, fresh per test -------------------------


@pytest.fixture
def openai_server() -> Iterator[ScriptedOpenAIServer]:
    """A started OpenAI-compatible server with an empty queue; ``push`` replies onto it."""
    with ScriptedOpenAIServer() as server:
        yield server


@pytest.fixture
def ollama_server() -> Iterator[ScriptedOllamaServer]:
    """A started Ollama server with an empty queue; ``push`` replies onto it."""
    with ScriptedOllamaServer() as server:
        yield server


@pytest.fixture
def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens, so connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
