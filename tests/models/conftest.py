"""Fixtures of the model tests: the circuit breaker under test, in memory and in real Redis.

``subject`` runs a test once per store, so both breakers are held to the same behaviour
(tests/models/test_breaker.py, tests/models/test_retry_after.py). ``answer`` runs a
provider test once streamed and once whole (tests/support/model_answers.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from astromesh.models.breaker import BreakerSettings, CircuitBreaker, MemoryCircuitBreaker
from astromesh.models.breaker_redis import RedisCircuitBreaker
from tests.support.model_answers import ANSWERS, Answer

RECOVERY = 0.3
"""Seconds; short so the Redis variant (real time, Redis's clock) stays fast."""


class FakeClock:
    """A clock that moves only when told (``now`` in seconds)."""

    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Subject:
    """A breaker and a way to let ``seconds`` pass for it."""

    breaker: CircuitBreaker
    advance: Callable[[float], Awaitable[None]]
    make_peer: Callable[[], CircuitBreaker]
    """Another breaker instance over the same state (another process, for Redis)."""


@pytest.fixture(params=["memory", "redis"])
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    """A breaker (threshold 3, recovery :data:`RECOVERY`): memory on a fake clock, or Redis
    in real time."""
    settings = BreakerSettings(failure_threshold=3, recovery_timeout=RECOVERY)
    if request.param == "memory":
        clock = FakeClock()
        breaker = MemoryCircuitBreaker(settings, clock=clock)

        async def step(seconds: float) -> None:
            clock.now += seconds

        yield Subject(breaker, step, lambda: breaker)
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    peers: list[RedisCircuitBreaker] = []

    def make() -> RedisCircuitBreaker:
        peers.append(RedisCircuitBreaker(url, settings, prefix=prefix))
        return peers[-1]

    yield Subject(make(), asyncio.sleep, make)
    for peer in peers:
        await peer.aclose()


@pytest.fixture(params=sorted(ANSWERS))
def answer(request: pytest.FixtureRequest) -> Answer:
    """Both ways of asking a provider (streamed, whole): answers and errors must match."""
    return ANSWERS[request.param]
