"""Message claims in PostgreSQL: once per id, released on demand, retaken after expiry, and
kept when Redis forgets its keys (the guards' other duties stay in Redis and fail open)."""

from __future__ import annotations

import asyncio

import pytest

from astromesh.channels.messaging.guards import DurableClaims, MemoryGuards, RedisGuards
from astromesh.stores.memory import MemoryBackend
from astromesh.stores.postgres import PostgresBackend


@pytest.fixture
async def postgres(postgres_schema):
    backend = PostgresBackend(postgres_schema, max_size=4)
    await backend.open()
    yield backend
    await backend.close()


async def test_a_message_is_claimed_once_under_concurrency(postgres):
    guards = DurableClaims(MemoryGuards(), lambda: _ready(postgres), prefix="t")
    won = await asyncio.gather(*(guards.claim("wa:1") for _ in range(20)))
    assert sum(won) == 1
    await guards.release("wa:1")
    assert await guards.claim("wa:1")


async def test_an_expired_claim_can_be_taken_again(postgres):
    guards = DurableClaims(MemoryGuards(), lambda: _ready(postgres), prefix="t")
    assert await guards.claim("wa:2", ttl_seconds=0)
    assert await guards.claim("wa:2", ttl_seconds=60)
    assert not await guards.claim("wa:2", ttl_seconds=60)


async def test_claims_outlive_a_redis_that_forgot_them(postgres, redis_url, redis_prefix):
    redis = RedisGuards(redis_url, prefix=redis_prefix)
    guards = DurableClaims(redis, lambda: _ready(postgres), prefix=redis_prefix)
    try:
        assert await guards.claim("wa:3")
        # Nothing of the claim is in Redis to lose: the prefix holds no "seen" key.
        assert await redis._client.keys(f"{redis_prefix}:seen:*") == []
        assert not await guards.claim("wa:3")
    finally:
        await guards.aclose()


async def test_without_postgresql_the_inner_guards_claim(redis_url, redis_prefix):
    guards = DurableClaims(MemoryGuards(), lambda: _ready(MemoryBackend()), prefix="t")
    assert await guards.claim("wa:4")
    assert not await guards.claim("wa:4")


async def test_rate_limits_and_turns_fail_open_while_redis_is_down(postgres, closed_port_url):
    down = closed_port_url.replace("http://", "redis://")
    guards = DurableClaims(RedisGuards(down, prefix="t"), lambda: _ready(postgres), prefix="t")
    try:
        assert await guards.claim("wa:5")  # PostgreSQL still takes claims
        verdict = await guards.hit("s", window_seconds=1, max_messages=1)
        assert verdict.allowed
        token = await guards.lease("s", 1)
        assert token is not None
        await guards.unlease("s", token)
    finally:
        await guards.aclose()


async def _ready(backend):
    return backend
