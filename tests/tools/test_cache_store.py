"""``cache_store`` on both of its stores (this process's memory, and a real Redis shared by
every instance): upstream's get/set/delete, per-tenant-and-agent namespaces, and its bounds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import TypeAdapter

from astromesh.config.tools import AnyTool
from astromesh.tools.base import ToolContext
from astromesh.tools.builtin import build_builtin
from astromesh.tools.builtin.cache_store import MemoryToolCache, RedisToolCache, ToolCache

ALICE = ToolContext(run_id="r1", agent="alice", session_id="s", namespace="acme")
ALICE_OTHER_TENANT = ToolContext(run_id="r2", agent="alice", session_id="s", namespace="globex")
BOB = ToolContext(run_id="r3", agent="bob", session_id="s", namespace="acme")


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[ToolCache]:
    if request.param == "memory":
        store: ToolCache = MemoryToolCache()
    else:
        url = request.getfixturevalue("redis_url")
        store = RedisToolCache(url, prefix=request.getfixturevalue("redis_prefix"))
    yield store
    await store.aclose()


def tool(cache: ToolCache, **config):
    cfg = TypeAdapter(AnyTool).validate_python(
        {"type": "builtin", "name": "cache_store", "config": config}
    )
    return build_builtin(cfg, cache=cache)


async def test_set_get_delete(cache: ToolCache) -> None:
    store = tool(cache)
    value = {"items": [1, 2], "note": "ñ"}
    assert (await store.call({"action": "set", "key": "cart", "value": value}, ALICE)).ok
    got = await store.call({"action": "get", "key": "cart"}, ALICE)
    assert got.data == {"key": "cart", "found": True, "value": value}
    assert (await store.call({"action": "delete", "key": "cart"}, ALICE)).ok
    gone = await store.call({"action": "get", "key": "cart"}, ALICE)
    assert gone.data == {"key": "cart", "found": False, "value": None}


async def test_each_tenant_and_agent_has_its_own_keys(cache: ToolCache) -> None:
    store = tool(cache)
    await store.call({"action": "set", "key": "secret", "value": "alice@acme"}, ALICE)
    for other in (ALICE_OTHER_TENANT, BOB):
        seen = await store.call({"action": "get", "key": "secret"}, other)
        assert seen.data["found"] is False
        await store.call({"action": "delete", "key": "secret"}, other)
    still = await store.call({"action": "get", "key": "secret"}, ALICE)
    assert still.data["value"] == "alice@acme"


async def test_values_and_key_counts_are_bounded(cache: ToolCache) -> None:
    store = tool(cache, max_value_bytes=100, max_keys=3)
    big = await store.call({"action": "set", "key": "big", "value": "x" * 200}, ALICE)
    assert not big.ok and "at most 100" in big.content
    for i in range(3):
        assert (await store.call({"action": "set", "key": f"k{i}", "value": i}, ALICE)).ok
    extra = await store.call({"action": "set", "key": "k3", "value": 3}, ALICE)
    assert not extra.ok and "3 keys" in extra.content
    again = await store.call({"action": "set", "key": "k0", "value": "new"}, ALICE)
    assert again.ok  # replacing an existing key is always fine
    long_key = await store.call({"action": "set", "key": "k" * 500, "value": 1}, ALICE)
    assert not long_key.ok


async def test_namespaces_expire_after_their_last_write(cache: ToolCache) -> None:
    store = tool(cache, ttl_seconds=1)
    await store.call({"action": "set", "key": "k", "value": 1}, ALICE)
    await asyncio.sleep(1.2)
    assert (await store.call({"action": "get", "key": "k"}, ALICE)).data["found"] is False


async def test_unknown_actions_are_refused(cache: ToolCache) -> None:
    result = await tool(cache).call({"action": "flush", "key": "k"}, ALICE)
    assert not result.ok and "action" in result.content
