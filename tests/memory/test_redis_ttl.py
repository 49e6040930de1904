"""Redis conversational history really expires: a 1 s TTL on a real server, waited out.

The store-level tests (tests/stores/test_backends.py) check that every key *has* a TTL and
that writes refresh it; this one checks what a user sees through the conversational memory:
a session left alone disappears (history and summary together), a session that keeps
talking does not, and nothing of either is left in Redis afterwards. Session isolation on
Redis and PostgreSQL is covered by tests/stores/test_conformance.py
(``test_sessions_are_isolated_by_every_key_part``, every backend).
"""

from __future__ import annotations

import asyncio
import time

from astromesh.memory import build_memory, build_summary_store
from astromesh.memory.summary import SummaryState
from astromesh.stores.base import SessionKey
from astromesh.stores.redis import RedisBackend

IDLE = SessionKey(agent="helper", session_id="idle")
ACTIVE = SessionKey(agent="helper", session_id="active")


async def _wait_until_empty(read: object, key: SessionKey, limit: float) -> float:
    """Poll ``read(key)`` every 50 ms until it is empty; return the seconds waited."""
    start = time.monotonic()
    while await read(key):  # type: ignore[operator]
        if time.monotonic() - start > limit:
            raise AssertionError(f"{key.session_id} still readable after {limit} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_history_expires_after_its_ttl_unless_the_session_keeps_writing(
    redis_url: str, redis_prefix: str
) -> None:
    backend = RedisBackend(redis_url, prefix=redis_prefix, ttl_seconds=1)
    memory = build_memory(backend.history, strategy="sliding_window", max_turns=5, max_tokens=None)
    summaries = build_summary_store(backend)
    try:
        written = time.monotonic()
        await memory.remember(IDLE, "q0", "a0")
        await summaries.put(IDLE, SummaryState("earlier talk", 2))
        await memory.remember(ACTIVE, "q0", "a0")
        assert [m.content for m in await memory.recall(IDLE)] == ["q0", "a0"]

        await asyncio.sleep(0.5)
        await memory.remember(ACTIVE, "q1", "a1")  # refreshes ACTIVE's TTL to a full second
        refreshed = time.monotonic()

        await _wait_until_empty(memory.recall, IDLE, limit=3.0)
        assert time.monotonic() - written >= 0.9  # not before its TTL
        assert await summaries.get(IDLE) is None  # the summary went with the history
        if time.monotonic() - refreshed < 0.8:  # (only meaningful if the host kept pace)
            assert [m.content for m in await memory.recall(ACTIVE)] == ["q0", "a0", "q1", "a1"]

        await _wait_until_empty(memory.recall, ACTIVE, limit=3.0)
        assert time.monotonic() - refreshed >= 0.9
        assert [k async for k in backend.client.scan_iter(match=f"{redis_prefix}:*")] == []
    finally:
        await backend.close()
