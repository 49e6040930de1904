"""The ``backend`` fixture: every StateBackend implementation, one parameter each.

Redis and PostgreSQL fixtures are requested lazily so the memory and SQLite cases run
without any server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from astromesh.stores.base import StateBackend
from astromesh.stores.memory import MemoryBackend

BACKENDS = ["memory", "sqlite", "redis", "postgres"]


async def make_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StateBackend:
    if kind == "memory":
        return MemoryBackend()
    if kind == "sqlite":
        from astromesh.stores.sqlite import SQLiteBackend

        return SQLiteBackend(tmp_path / "state" / "astromesh.db")
    if kind == "redis":
        from astromesh.stores.redis import RedisBackend

        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        return RedisBackend(url, prefix=prefix, ttl_seconds=600)
    if kind == "postgres":
        from astromesh.stores.postgres import PostgresBackend

        backend = PostgresBackend(request.getfixturevalue("postgres_schema"), max_size=4)
        await backend.open()
        return backend
    raise AssertionError(kind)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateBackend]:
    store = await make_backend(request.param, request, tmp_path)
    try:
        yield store
    finally:
        await store.close()
