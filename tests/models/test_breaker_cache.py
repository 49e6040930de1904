"""The Redis breaker's per-process cache of circuit state, against a real Redis: what it lets
an instance skip, and how stale its view of another instance's changes can get (at most
``cache_seconds``, or until its own next failure). The cache's clock is a fake one here; the
circuit's clock is Redis's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from astromesh.models.breaker import BreakerSettings, BreakerState, Refusal
from astromesh.models.breaker_redis import RedisCircuitBreaker
from tests.models.conftest import FakeClock

KEY = "openai/gpt-x"
CACHE = 1.0
SETTINGS = BreakerSettings(failure_threshold=3, recovery_timeout=60)


@pytest.fixture
async def breakers(
    redis_url: str, redis_prefix: str
) -> AsyncIterator[Callable[..., RedisCircuitBreaker]]:
    """``make(cache_seconds, clock)``: instances sharing one circuit, closed afterwards."""
    made: list[RedisCircuitBreaker] = []

    def make(cache_seconds: float = CACHE, clock: FakeClock | None = None) -> RedisCircuitBreaker:
        made.append(
            RedisCircuitBreaker(
                redis_url,
                SETTINGS,
                prefix=redis_prefix,
                cache_seconds=cache_seconds,
                clock=clock or FakeClock(),
            )
        )
        return made[-1]

    yield make
    for breaker in made:
        await breaker.aclose()


async def fail(breaker: RedisCircuitBreaker, times: int) -> None:
    for _ in range(times):
        await breaker.record_failure(KEY)


async def test_another_instances_opening_is_seen_once_the_cache_time_ends(breakers):
    clock = FakeClock()
    here, there = breakers(clock=clock), breakers(cache_seconds=0)
    assert await here.allow(KEY)  # closed and clean: remembered for CACHE seconds

    await fail(there, 3)
    assert (await there.status(KEY)).state is BreakerState.OPEN

    assert await here.allow(KEY)  # the stale view this cache trades for its speed
    clock.now += CACHE + 0.01
    refused = await here.admit(KEY)
    assert not refused and refused.reason is Refusal.OPEN and refused.wait > 0


async def test_an_own_failure_ends_the_stale_view_at_once(breakers):
    here, there = breakers(), breakers(cache_seconds=0)
    assert await here.allow(KEY)
    await fail(there, 3)

    await here.record_failure(KEY)  # a call admitted on the stale view failed

    assert not await here.allow(KEY)
    assert (await here.status(KEY)).state is BreakerState.OPEN


async def test_a_success_resets_failures_counted_elsewhere_when_redis_says_so(breakers):
    here, there = breakers(), breakers(cache_seconds=0)
    await fail(there, 2)

    assert await here.allow(KEY)  # closed, but with failures counted: not "clean"
    await here.record_success(KEY)

    assert (await there.status(KEY)).failures == 0
    await fail(there, 2)
    assert (await there.status(KEY)).state is BreakerState.CLOSED  # still consecutive only


async def test_successes_on_a_clean_view_skip_redis_until_the_cache_time_ends(breakers):
    clock = FakeClock()
    here, there = breakers(clock=clock), breakers(cache_seconds=0)
    assert await here.allow(KEY)
    await fail(there, 2)

    await here.record_success(KEY)  # clean when last asked: not reported
    assert (await there.status(KEY)).failures == 2  # the slack the cache trades

    clock.now += CACHE + 0.01
    assert await here.allow(KEY)  # asks Redis again: failures are counted now
    await here.record_success(KEY)
    assert (await there.status(KEY)).failures == 0


async def test_a_refusal_is_remembered_with_its_remaining_wait(breakers):
    clock = FakeClock()
    here, there = breakers(clock=clock), breakers(cache_seconds=0)
    await fail(there, 3)
    first = await here.admit(KEY)

    clock.now += 0.25
    again = await here.admit(KEY)  # from the cache

    assert not again and again.reason is Refusal.OPEN
    assert again.wait == pytest.approx(first.wait - 0.25)


async def test_the_trial_is_never_cached(breakers):
    here = breakers(cache_seconds=60)
    fast = RedisCircuitBreaker(
        here.url,
        BreakerSettings(failure_threshold=1, recovery_timeout=60, first_trial_after=0.05),
        prefix=here.prefix,
        cache_seconds=60,
    )
    try:
        await fast.record_failure(KEY)  # opens, its first trial due in 0.05 s (Redis's clock)
        await asyncio.sleep(0.1)
        trial = await fast.admit(KEY)
        assert trial.trial
        refused = await fast.admit(KEY)  # another caller: the trial is running
        assert not refused and refused.reason is Refusal.TRIAL_RUNNING
        await fast.record_success(KEY)  # the trial's success goes to Redis and closes it
        assert (await here.status(KEY)).state is BreakerState.CLOSED
    finally:
        await fast.aclose()


async def test_without_the_cache_another_instances_opening_is_seen_at_once(breakers):
    here, there = breakers(cache_seconds=0), breakers(cache_seconds=0)
    assert await here.allow(KEY)
    await fail(there, 3)
    assert not await here.allow(KEY)
