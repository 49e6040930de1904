"""Circuit breaker transitions, in memory and in the real Redis (the same tests for both),
and two routers sharing one circuit through Redis as two Lambda instances would."""

from __future__ import annotations

import asyncio
import socket

from astromesh.models import Message, ProviderSettings
from astromesh.models.breaker import (
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    MemoryCircuitBreaker,
    build_breaker,
)
from astromesh.models.breaker_redis import RedisCircuitBreaker
from astromesh.models.openai_compat import OpenAICompatModel
from astromesh.models.router import ModelRouter, RetryPolicy
from astromesh.models.strategies import candidate_key
from tests.models.conftest import RECOVERY, Subject
from tests.support.model_servers import Reply, ScriptedOpenAIServer

KEY = "openai/gpt-test"


async def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        await breaker.record_failure(KEY)


async def test_closed_until_the_threshold_of_consecutive_failures(subject: Subject) -> None:
    b = subject.breaker
    await fail(b, 2)
    assert await b.allow(KEY)
    assert (await b.status(KEY)).failures == 2

    await b.record_success(KEY)  # a success resets the count: failures must be consecutive
    await fail(b, 2)
    assert (await b.status(KEY)).state is BreakerState.CLOSED

    await fail(b, 1)
    status = await b.status(KEY)
    assert status.state is BreakerState.OPEN
    assert 0 < status.retry_in <= RECOVERY + 1e-6
    assert not await b.allow(KEY)


async def test_half_open_allows_exactly_one_trial(subject: Subject) -> None:
    b, peer = subject.breaker, subject.make_peer()
    await fail(b, 3)
    await subject.advance(RECOVERY + 0.05)

    allowed = await asyncio.gather(*(x.allow(KEY) for x in [b, peer] * 10))

    assert sum(allowed) == 1
    assert (await b.status(KEY)).state is BreakerState.HALF_OPEN


async def test_a_successful_trial_closes_the_circuit(subject: Subject) -> None:
    b = subject.breaker
    await fail(b, 3)
    await subject.advance(RECOVERY + 0.05)
    assert await b.allow(KEY)

    await b.record_success(KEY)

    assert (await b.status(KEY)).state is BreakerState.CLOSED
    assert await b.allow(KEY) and await b.allow(KEY)


async def test_a_failed_trial_reopens_for_another_recovery_timeout(subject: Subject) -> None:
    b = subject.breaker
    await fail(b, 3)
    await subject.advance(RECOVERY + 0.05)
    assert await b.allow(KEY)

    await b.record_failure(KEY)

    assert (await b.status(KEY)).state is BreakerState.OPEN
    assert not await b.allow(KEY)
    await subject.advance(RECOVERY + 0.05)
    assert await b.allow(KEY)


async def test_a_lost_trial_is_given_to_another_caller_after_its_lease(subject: Subject) -> None:
    b = subject.breaker
    await fail(b, 3)
    await subject.advance(RECOVERY + 0.05)
    assert await b.allow(KEY)  # this caller never reports (a frozen Lambda)
    assert not await b.allow(KEY)

    await subject.advance(RECOVERY + 0.05)  # trial_timeout defaults to recovery_timeout

    assert await b.allow(KEY)


async def test_stragglers_do_not_change_an_open_circuit(subject: Subject) -> None:
    b = subject.breaker
    await fail(b, 3)
    await b.record_success(KEY)  # a call admitted before the circuit opened
    await b.record_failure(KEY)
    assert (await b.status(KEY)).state is BreakerState.OPEN


async def test_circuits_are_per_key(subject: Subject) -> None:
    b = subject.breaker
    await fail(b, 3)
    assert await b.allow("openai/other-model")


async def test_redis_down_fails_open() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    breaker = RedisCircuitBreaker(f"redis://127.0.0.1:{port}/0", BreakerSettings(1))

    await breaker.record_failure(KEY)

    assert await breaker.allow(KEY) is True
    assert (await breaker.status(KEY)).state is BreakerState.CLOSED
    await breaker.aclose()


def test_redis_breaker_survives_a_new_event_loop(redis_url: str, redis_prefix: str) -> None:
    breaker = RedisCircuitBreaker(redis_url, BreakerSettings(1, 60), prefix=redis_prefix)
    asyncio.run(breaker.record_failure(KEY))
    assert asyncio.run(breaker.allow(KEY)) is False  # a new loop, same circuit


def test_build_breaker_picks_redis_only_with_a_url(redis_url: str) -> None:
    assert isinstance(build_breaker(None), MemoryCircuitBreaker)
    redis_breaker = build_breaker(redis_url, failure_threshold=5, recovery_timeout=9)
    assert isinstance(redis_breaker, RedisCircuitBreaker)
    assert redis_breaker.settings == BreakerSettings(5, 9)


# -- two routers (two Lambda instances) sharing one circuit through Redis ---------------------


async def test_two_routers_share_one_circuit_through_redis(
    redis_url: str, redis_prefix: str
) -> None:
    settings = BreakerSettings(failure_threshold=2, recovery_timeout=RECOVERY)
    with ScriptedOpenAIServer() as primary_srv, ScriptedOpenAIServer() as fallback_srv:

        def instance() -> ModelRouter:
            """What each Lambda instance builds: its own providers, router and breaker."""

            def model(server: ScriptedOpenAIServer, name: str) -> OpenAICompatModel:
                return OpenAICompatModel(
                    ProviderSettings("openai_compat", "gpt-x", endpoint=server.url, name=name)
                )

            return ModelRouter(
                {"default": [model(primary_srv, "primary"), model(fallback_srv, "fallback")]},
                breaker=RedisCircuitBreaker(redis_url, settings, prefix=redis_prefix),
                retry=RetryPolicy(retries=0),
            )

        a, b = instance(), instance()
        primary_srv.push(Reply(status=503), Reply(status=503))
        fallback_srv.push(*(Reply(f"fallback {i}") for i in range(5)))
        hello = [Message.user("hi")]

        await a.complete(hello)
        await b.complete(hello)  # the second consecutive failure, seen by another instance
        assert len(primary_srv.requests) == 2

        assert (await b.complete(hello)).content == "fallback 2"
        assert (await a.complete(hello)).content == "fallback 3"
        assert len(primary_srv.requests) == 2  # both instances skip the open circuit
        key = candidate_key(a.primary())
        assert (await a.breaker.status(key)).state is BreakerState.OPEN  # type: ignore[union-attr]

        await asyncio.sleep(RECOVERY + 0.05)
        primary_srv.push(Reply("primary is back", delay=0.2))
        answers = await asyncio.gather(a.complete(hello), b.complete(hello))

        # Exactly one instance made the trial call; the other went to the fallback meanwhile.
        assert sorted(r.content for r in answers) == ["fallback 4", "primary is back"]
        assert len(primary_srv.requests) == 3
        assert (await b.breaker.status(key)).state is BreakerState.CLOSED  # type: ignore[union-attr]
        for r in (a, b):
            await r.aclose()
            await r.breaker.aclose()  # type: ignore[union-attr]
