"""Half-open trials back off exponentially: the first comes ``first_trial_after`` seconds after
the circuit opens, each failed trial doubles the wait up to ``recovery_timeout``, and a
successful trial (or a 429 answering it) starts the sequence over. The same tests run on the
in-memory breaker (a fake clock) and on the real Redis (real time, Redis's clock, shared by
two instances)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from astromesh.config.provider import RoutingConfig
from astromesh.models.breaker import BreakerSettings, BreakerState, MemoryCircuitBreaker
from astromesh.models.breaker_redis import RedisCircuitBreaker
from astromesh.models.factory import breaker_for
from tests.models.conftest import FakeClock, Subject

KEY = "openai/gpt-test"
FIRST = 0.2
CAP = 0.8
SETTINGS = BreakerSettings(failure_threshold=2, recovery_timeout=CAP, first_trial_after=FIRST)


@pytest.fixture(params=["memory", "redis"])
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    if request.param == "memory":
        clock = FakeClock()
        breaker = MemoryCircuitBreaker(SETTINGS, clock=clock)

        async def step(seconds: float) -> None:
            clock.now += seconds

        yield Subject(breaker, step, lambda: breaker)
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    peers: list[RedisCircuitBreaker] = []

    def make() -> RedisCircuitBreaker:
        peers.append(RedisCircuitBreaker(url, SETTINGS, prefix=prefix))
        return peers[-1]

    yield Subject(make(), asyncio.sleep, make)
    for peer in peers:
        await peer.aclose()


async def open_wait(subject: Subject) -> float:
    status = await subject.breaker.status(KEY)
    assert status.state is BreakerState.OPEN
    return status.retry_in


async def fail_the_trial(subject: Subject, wait: float) -> None:
    """Let the open circuit's wait pass, take its trial on another instance, fail it."""
    await subject.advance(wait + 0.02)
    peer = subject.make_peer()
    assert (await peer.admit(KEY)).trial
    await peer.record_failure(KEY)


async def test_each_failed_trial_doubles_the_wait_up_to_the_recovery_timeout(
    subject: Subject,
) -> None:
    b = subject.breaker
    await b.record_failure(KEY)
    await b.record_failure(KEY)

    waits = [await open_wait(subject)]
    for _ in range(3):
        await fail_the_trial(subject, waits[-1])
        waits.append(await open_wait(subject))

    # 0.2, 0.4, 0.8, then capped at 0.8 (each read a moment after it was set)
    for wait, due in zip(waits, [FIRST, 2 * FIRST, CAP, CAP], strict=True):
        assert due - 0.15 < wait <= due + 1e-6, waits


async def test_a_successful_trial_starts_the_backoff_over(subject: Subject) -> None:
    b = subject.breaker
    await b.record_failure(KEY)
    await b.record_failure(KEY)
    await fail_the_trial(subject, await open_wait(subject))
    await subject.advance(await open_wait(subject) + 0.02)
    assert (await b.admit(KEY)).trial
    await b.record_success(KEY)
    assert (await b.status(KEY)).state is BreakerState.CLOSED

    await b.record_failure(KEY)
    await b.record_failure(KEY)

    assert await open_wait(subject) <= FIRST + 1e-6


async def test_a_trial_answered_429_starts_the_backoff_over(subject: Subject) -> None:
    b = subject.breaker
    await b.record_failure(KEY)
    await b.record_failure(KEY)
    await fail_the_trial(subject, await open_wait(subject))
    await subject.advance(await open_wait(subject) + 0.02)
    assert (await b.admit(KEY)).trial
    await b.record_rate_limited(KEY)  # the backend is up

    await b.record_failure(KEY)
    await b.record_failure(KEY)

    assert await open_wait(subject) <= FIRST + 1e-6


async def test_a_retry_after_longer_than_the_backoff_wins(subject: Subject) -> None:
    b = subject.breaker
    await b.record_failure(KEY)
    await b.record_failure(KEY, retry_after=CAP * 2)

    assert CAP < await open_wait(subject) <= CAP * 2 + 1e-6


def test_the_routing_document_sets_the_first_trial():
    routing = RoutingConfig.model_validate(
        {"circuit_breaker": {"recovery_timeout": 30, "first_trial_after": 5}}
    )
    breaker = breaker_for(routing, None)
    assert breaker.settings.first_trial_after == 5 and breaker.settings.recovery_timeout == 30
    assert [breaker.settings.open_seconds(n) for n in range(4)] == [5, 10, 20, 30]
    default = breaker_for(RoutingConfig(), None).settings
    assert (default.first_trial_after, default.recovery_timeout) == (2, 60)
