"""``open_backend``: the right class per kind, and clear errors for what is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from astromesh.errors import ConfigurationError
from astromesh.runs.state import RunState
from astromesh.stores.factory import open_backend
from astromesh.stores.memory import MemoryBackend
from astromesh.stores.sqlite import SQLiteBackend


async def test_memory_and_sqlite(tmp_path: Path) -> None:
    assert isinstance(open_backend("memory"), MemoryBackend)
    backend = open_backend("sqlite", sqlite_path=tmp_path / "x.db")
    assert isinstance(backend, SQLiteBackend)
    try:
        await backend.runs.create(RunState(agent="a", query="q"))
    finally:
        await backend.close()
    assert (tmp_path / "x.db").exists()


async def test_redis(redis_url: str, redis_prefix: str) -> None:
    from astromesh.stores.redis import RedisBackend

    backend = open_backend("redis", redis_url=redis_url, redis_prefix=redis_prefix, ttl_seconds=30)
    assert isinstance(backend, RedisBackend)
    try:
        run = await backend.runs.create(RunState(agent="a", query="q"))
        assert 0 < await backend.client.ttl(f"{redis_prefix}:run:{run.id}") <= 30
    finally:
        await backend.close()


async def test_postgres(postgres_schema: str) -> None:
    from astromesh.stores.postgres import PostgresBackend

    backend = open_backend("postgres", postgres_dsn=postgres_schema)
    assert isinstance(backend, PostgresBackend)
    try:
        assert await backend.runs.list_runs() == []
    finally:
        await backend.close()


@pytest.mark.parametrize(("kind", "needs"), [("redis", "redis_url"), ("postgres", "postgres_dsn")])
def test_missing_url_is_a_configuration_error(kind: str, needs: str) -> None:
    with pytest.raises(ConfigurationError, match=needs):
        open_backend(kind)


def test_unknown_kind() -> None:
    with pytest.raises(ConfigurationError, match="unknown state backend 'dynamo'"):
        open_backend("dynamo")


@pytest.mark.parametrize(
    ("kind", "module", "blocked", "kwargs"),
    [
        ("redis", "astromesh.stores.redis", "redis", {"redis_url": "redis://x"}),
        ("postgres", "astromesh.stores.postgres", "psycopg_pool", {"postgres_dsn": "dbname=x"}),
    ],
)
def test_missing_extra_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, kind: str, module: str, blocked: str, kwargs: dict[str, str]
) -> None:
    monkeypatch.delitem(sys.modules, module, raising=False)
    for name in list(sys.modules):
        if name == blocked or name.startswith(f"{blocked}."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, blocked, None)  # makes `import <blocked>` fail

    with pytest.raises(ConfigurationError, match=rf"astromesh\[{kind}\]"):
        open_backend(kind, **kwargs)


def test_light_import_does_not_load_extras() -> None:
    import subprocess

    code = (
        "import sys, astromesh.stores, astromesh.stores.factory, astromesh.stores.sqlite; "
        "print(sorted(m for m in ('redis', 'psycopg', 'psycopg_pool') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
