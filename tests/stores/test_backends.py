"""What only one backend has: Redis TTLs and indexes, SQLite files, PostgreSQL pool life."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from astromesh.models.types import Message
from astromesh.runs.state import ActionResult, RunState
from astromesh.stores.base import SessionKey
from astromesh.stores.postgres import PostgresBackend
from astromesh.stores.redis import RedisBackend
from astromesh.stores.sqlite import SQLiteBackend

KEY = SessionKey(agent="a", session_id="s")

# --- Redis ------------------------------------------------------------------------------


async def test_redis_sets_ttl_on_every_key(redis_url: str, redis_prefix: str) -> None:
    backend = RedisBackend(redis_url, prefix=redis_prefix, ttl_seconds=120)
    try:
        run = await backend.runs.create(RunState(agent="a", session_id="s", query="q"))
        await backend.history.append(KEY, [Message.user("hi")])
        await backend.runs.put_result(
            run.id, ActionResult(call_id="c1", name="t", ok=True, content="r")
        )
        keys = sorted([k async for k in backend.client.scan_iter(match=f"{redis_prefix}:*")])

        assert f"{redis_prefix}:run:{run.id}" in keys
        assert f"{redis_prefix}:results:{run.id}" in keys
        assert f"{redis_prefix}:runs:agent:a" in keys
        assert any(":hist:" in k for k in keys)
        for key in keys:
            assert 0 < await backend.client.ttl(key) <= 120, key
    finally:
        await backend.close()


async def test_redis_writes_refresh_ttl(redis_url: str, redis_prefix: str) -> None:
    backend = RedisBackend(redis_url, prefix=redis_prefix, ttl_seconds=120)
    try:
        run = await backend.runs.create(RunState(agent="a", query="q"))
        await backend.client.expire(f"{redis_prefix}:run:{run.id}", 5)
        await backend.runs.save(run)
        assert await backend.client.ttl(f"{redis_prefix}:run:{run.id}") > 100

        await backend.history.append(KEY, [Message.user("1")])
        hist_key = f"{redis_prefix}:hist:default:default:a:s"
        await backend.client.expire(hist_key, 5)
        await backend.history.append(KEY, [Message.user("2")])
        assert await backend.client.ttl(hist_key) > 100
    finally:
        await backend.close()


async def test_redis_without_ttl_keeps_keys(redis_url: str, redis_prefix: str) -> None:
    backend = RedisBackend(redis_url, prefix=redis_prefix, ttl_seconds=None)
    try:
        run = await backend.runs.create(RunState(agent="a", query="q"))
        await backend.runs.save(run)
        await backend.history.append(KEY, [Message.user("hi")])
        async for key in backend.client.scan_iter(match=f"{redis_prefix}:*"):
            assert await backend.client.ttl(key) == -1, key
    finally:
        await backend.close()


async def test_redis_list_skips_and_prunes_expired_runs(redis_url: str, redis_prefix: str) -> None:
    backend = RedisBackend(redis_url, prefix=redis_prefix)
    try:
        kept = await backend.runs.create(RunState(agent="a", query="kept"))
        gone = await backend.runs.create(RunState(agent="a", query="gone"))
        await backend.client.delete(f"{redis_prefix}:run:{gone.id}")  # as if its TTL ran out

        assert [r.id for r in await backend.runs.list_runs(agent="a")] == [kept.id]
        members = await backend.client.zrange(f"{redis_prefix}:runs:agent:a", 0, -1)
        assert members == [kept.id]
    finally:
        await backend.close()


async def test_redis_list_pages_past_filtered_out_runs(redis_url: str, redis_prefix: str) -> None:
    # The agent index is walked page by page; the session filter is applied to documents.
    backend = RedisBackend(redis_url, prefix=redis_prefix)
    try:
        target = await backend.runs.create(RunState(agent="a", session_id="rare", query="q"))
        for i in range(45):
            await backend.runs.create(RunState(agent="a", session_id=f"s{i}", query="q"))
        found = await backend.runs.list_runs(agent="a", session_id="rare", limit=1)
        assert [r.id for r in found] == [target.id]
    finally:
        await backend.close()


async def test_redis_prefix_isolates_backends(redis_url: str, redis_prefix: str) -> None:
    one = RedisBackend(redis_url, prefix=f"{redis_prefix}:one")
    two = RedisBackend(redis_url, prefix=f"{redis_prefix}:two")
    try:
        await one.runs.create(RunState(agent="a", query="q"))
        await one.history.append(KEY, [Message.user("hi")])
        assert await two.runs.list_runs() == []
        assert await two.history.read(KEY) == []
    finally:
        await one.close()
        await two.close()


def test_redis_rejects_negative_ttl() -> None:
    with pytest.raises(ValueError, match="ttl"):
        RedisBackend("redis://127.0.0.1:6379/15", ttl_seconds=-1)


async def test_redis_client_speaks_to_the_configured_database(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        assert await client.ping()
    finally:
        await client.aclose()


# --- SQLite -----------------------------------------------------------------------------


async def test_sqlite_file_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dirs" / "state.db"  # parents are created
    first = SQLiteBackend(path)
    run = await first.runs.create(RunState(agent="a", query="persist me"))
    await first.history.append(KEY, [Message.user("remember")])
    await first.close()

    second = SQLiteBackend(path)
    try:
        assert (await second.runs.get(run.id)).query == "persist me"
        assert await second.history.read(KEY) == [Message.user("remember")]
        run.answer = "saved after reopen"
        await second.runs.save(run)
        assert (await second.runs.get(run.id)).version == 2
    finally:
        await second.close()


async def test_sqlite_uses_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    backend = SQLiteBackend(path)
    await backend.open()
    mode = await backend.call(lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0])
    await backend.close()
    assert mode == "wal"


async def test_sqlite_in_memory_database_works() -> None:
    backend = SQLiteBackend(":memory:")
    try:
        run = await backend.runs.create(RunState(agent="a", query="q"))
        assert (await backend.runs.get(run.id)).id == run.id
    finally:
        await backend.close()


async def test_sqlite_stays_off_the_event_loop_thread(tmp_path: Path) -> None:
    import threading

    backend = SQLiteBackend(tmp_path / "thread.db")
    try:
        worker = await backend.call(lambda _conn: threading.get_ident())
        assert worker != threading.get_ident()
    finally:
        await backend.close()


async def test_sqlite_two_backends_on_one_file_share_cas(tmp_path: Path) -> None:
    # Two connections (as two processes would have) still let exactly one writer win.
    path = tmp_path / "shared.db"
    one, two = SQLiteBackend(path), SQLiteBackend(path)
    try:
        run = await one.runs.create(RunState(agent="a", query="q"))
        a, b = await asyncio.gather(one.runs.get(run.id), two.runs.get(run.id))
        results = await asyncio.gather(one.runs.save(a), two.runs.save(b), return_exceptions=True)
        assert sum(isinstance(r, RunState) for r in results) == 1
    finally:
        await one.close()
        await two.close()


async def test_sqlite_closed_backend_refuses_calls(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "closed.db")
    await backend.open()
    await backend.close()
    await backend.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await backend.runs.get("x")
    with sqlite3.connect(tmp_path / "closed.db") as conn:  # the file is intact
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)


# --- PostgreSQL -------------------------------------------------------------------------


def test_postgres_backend_connects_lazily() -> None:
    # Nothing listens there; building the backend must not try.
    PostgresBackend("postgresql://nobody@127.0.0.1:1/none")


async def test_postgres_opens_on_first_use(postgres_schema: str) -> None:
    backend = PostgresBackend(postgres_schema)
    try:
        run = await backend.runs.create(RunState(agent="a", query="q"))
        assert (await backend.runs.get(run.id)).id == run.id
    finally:
        await backend.close()
    with pytest.raises(RuntimeError, match="closed"):
        await backend.runs.get(run.id)


async def test_postgres_stores_jsonb_documents(postgres_schema: str) -> None:
    import psycopg

    backend = PostgresBackend(postgres_schema)
    try:
        run = await backend.runs.create(RunState(agent="a", query="q", data={"k": [1, 2]}))
    finally:
        await backend.close()
    with psycopg.connect(postgres_schema) as conn:
        row = conn.execute(
            "SELECT jsonb_typeof(document), document -> 'data' -> 'k', version, status"
            " FROM runs WHERE id = %s",
            (run.id,),
        ).fetchone()
    assert row == ("object", [1, 2], 1, "running")
