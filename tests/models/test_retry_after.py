"""Retry-After: parsed by the providers, honoured by the router, shared through the breaker.

Real scripted servers send the header; the breaker cases run against memory and real Redis
(the ``subject`` fixture), since both must keep a candidate out for the hinted time.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from astromesh.errors import ProviderError, ProviderUnavailable
from astromesh.models import Message, Model, ProviderSettings
from astromesh.models._http import MAX_RETRY_AFTER, retry_after_seconds
from astromesh.models.breaker import (
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    MemoryCircuitBreaker,
    Refusal,
    Verdict,
)
from astromesh.models.breaker_redis import RedisCircuitBreaker
from astromesh.models.hf_tgi import TGIModel
from astromesh.models.ollama import OllamaModel
from astromesh.models.openai_compat import OpenAICompatModel
from astromesh.models.router import ModelRouter, RetryPolicy, model_deadline
from astromesh.models.strategies import candidate_key
from tests.models.conftest import RECOVERY, Subject
from tests.support.model_servers import (
    Reply,
    ScriptedOllamaServer,
    ScriptedOpenAIServer,
    ScriptedTGIServer,
)

HELLO = [Message.user("hi")]
KEY = "openai/gpt-test"
NOW = 1_750_000_000.0
EPS = 1e-6
"""Float slack of a time difference (fake clock or Redis's)."""


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


def openai(server: ScriptedOpenAIServer, name: str = "primary") -> OpenAICompatModel:
    return OpenAICompatModel(
        ProviderSettings(
            "openai_compat", "gpt-x", endpoint=server.url, name=name, timeout_seconds=5.0
        )
    )


def ollama(server: ScriptedOllamaServer) -> OllamaModel:
    return OllamaModel(
        ProviderSettings(
            "ollama", "llama3", endpoint=server.url, name="fallback", timeout_seconds=5
        )
    )


async def elapsed(coro: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - started


# -- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 0.25 "}, 0.25),
        ({"retry-after": http_date(NOW + 30)}, 30.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past: now
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "999999999"}, MAX_RETRY_AFTER),  # a broken header is bounded
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),  # the precise one first
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_seconds_reads_seconds_and_http_dates(
    headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after_seconds(headers, now=NOW) == expected


def test_an_http_date_without_zone_is_gmt() -> None:
    naive = http_date(NOW + 12).replace("GMT", "-0000")
    assert retry_after_seconds({"retry-after": naive}, now=NOW) == 12.0


# -- providers carry the hint ----------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
async def test_openai_compat_errors_carry_retry_after(
    openai_server: ScriptedOpenAIServer, status: int
) -> None:
    openai_server.push(Reply(status=status, headers={"Retry-After": "3"}))
    model = openai(openai_server)

    with pytest.raises(ProviderError) as caught:
        await model.complete(HELLO)

    assert (caught.value.status_code, caught.value.retry_after) == (status, 3.0)
    assert caught.value.retryable
    assert "Retry-After 3.0s" in caught.value.message
    await model.aclose()


async def test_ollama_and_tgi_errors_carry_a_date_hint(
    ollama_server: ScriptedOllamaServer,
) -> None:
    date = {"Retry-After": http_date(time.time() + 60)}
    ollama_server.push(Reply(status=503, headers=date))
    with ScriptedTGIServer([Reply(status=429, headers=date)], chat_template=None) as tgi:
        models: list[Model] = [
            ollama(ollama_server),
            TGIModel(ProviderSettings("hf_tgi", "m", endpoint=tgi.url, timeout_seconds=5)),
        ]
        for model in models:
            with pytest.raises(ProviderError) as caught:
                await model.complete(HELLO)
            assert caught.value.retry_after is not None
            assert 58 <= caught.value.retry_after <= 60  # whole seconds in a date
            await model.aclose()


async def test_a_client_error_carries_no_hint(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.push(Reply(status=400, headers={"Retry-After": "3"}))
    model = openai(openai_server)
    with pytest.raises(ProviderError) as caught:
        await model.complete(HELLO)
    assert (caught.value.retryable, caught.value.retry_after) == (False, None)
    await model.aclose()


# -- the router honours it ---------------------------------------------------------------------


@pytest.fixture
async def pair(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> AsyncIterator[Callable[..., ModelRouter]]:
    """Builds routers over (primary: the OpenAI server, fallback: the Ollama server)."""
    built: list[ModelRouter] = []

    def make(**kwargs: Any) -> ModelRouter:
        kwargs.setdefault("retry", RetryPolicy(retries=2, base_delay=0.001, max_delay=1.0))
        router = ModelRouter({"default": [openai(openai_server), ollama(ollama_server)]}, **kwargs)
        built.append(router)
        return router

    yield make
    for router in built:
        await router.aclose()


@pytest.mark.parametrize("status", [429, 503])
async def test_a_short_hint_is_waited_before_retrying_the_same_candidate(
    pair: Callable[..., ModelRouter],
    openai_server: ScriptedOpenAIServer,
    ollama_server: ScriptedOllamaServer,
    status: int,
) -> None:
    openai_server.push(Reply(status=status, headers={"Retry-After": "0.4"}), Reply("second try"))
    router = pair(breaker=MemoryCircuitBreaker(BreakerSettings(3, recovery_timeout=60)))

    response, took = await elapsed(router.complete(HELLO))

    assert response.content == "second try"
    assert took >= 0.4  # never sooner than the hint (the backoff alone is ~1 ms)
    assert ollama_server.requests == []


@pytest.mark.parametrize("status", [429, 503])
async def test_a_hint_longer_than_max_delay_falls_back_at_once(
    pair: Callable[..., ModelRouter],
    openai_server: ScriptedOpenAIServer,
    ollama_server: ScriptedOllamaServer,
    status: int,
) -> None:
    openai_server.push(Reply(status=status, headers={"Retry-After": http_date(time.time() + 30)}))
    ollama_server.push(Reply("from the fallback"))
    router = pair()

    response, took = await elapsed(router.complete(HELLO))

    assert response.content == "from the fallback"
    assert took < 0.5  # no sleep, though two retries were allowed
    assert len(openai_server.requests) == 1


async def test_a_hint_past_the_callers_deadline_falls_back_at_once(
    pair: Callable[..., ModelRouter],
    openai_server: ScriptedOpenAIServer,
    ollama_server: ScriptedOllamaServer,
) -> None:
    openai_server.push(Reply(status=503, headers={"Retry-After": "0.8"}))
    ollama_server.push(Reply("from the fallback"))
    router = pair()  # max_delay 1.0 would allow the wait; the run cannot afford it

    with model_deadline(0.5):
        response, took = await elapsed(router.complete(HELLO))

    assert response.content == "from the fallback"
    assert took < 0.4
    assert len(openai_server.requests) == 1


async def test_without_a_fallback_the_hint_reaches_the_caller(
    openai_server: ScriptedOpenAIServer,
) -> None:
    openai_server.push(Reply(status=429, headers={"Retry-After": "20"}))
    router = ModelRouter(
        {"default": [openai(openai_server)]},
        retry=RetryPolicy(retries=3, max_delay=2.0),
        breaker=MemoryCircuitBreaker(),
    )

    with pytest.raises(ProviderUnavailable) as caught:
        await router.complete(HELLO)
    assert caught.value.retry_after == 20.0
    # The next request does not even call it: the candidate is on hold.
    with pytest.raises(ProviderUnavailable) as again:
        await router.complete(HELLO)
    assert len(openai_server.requests) == 1
    assert "rate-limited (Retry-After)" in again.value.message
    assert again.value.retry_after is not None and 19 < again.value.retry_after <= 20
    await router.aclose()


# -- the breaker keeps the candidate out for the hinted time (memory and Redis) ---------------


async def test_a_hinted_failure_opens_the_circuit_at_once_for_the_hint(subject: Subject) -> None:
    b = subject.breaker
    assert await b.record_failure(KEY, retry_after=0.5) is True  # below the threshold of 3

    status = await b.status(KEY)
    assert status.state is BreakerState.OPEN
    assert RECOVERY < status.retry_in <= 0.5 + EPS  # the hint, longer than recovery_timeout
    admission = await b.admit(KEY)
    assert (admission.verdict, admission.reason) == (Verdict.REFUSED, Refusal.OPEN)
    assert 0.3 < admission.wait <= 0.5 + EPS

    await subject.advance(0.35)  # past recovery_timeout, not past the hint
    assert not await b.allow(KEY)
    await subject.advance(0.2)
    assert (await b.admit(KEY)).verdict is Verdict.TRIAL  # then the usual single trial


async def test_a_short_hint_opens_only_for_the_hint(subject: Subject) -> None:
    b = subject.breaker
    await b.record_failure(KEY, retry_after=0.1)
    assert 0 < (await b.status(KEY)).retry_in <= 0.1 + EPS
    await subject.advance(0.15)
    assert (await b.admit(KEY)).verdict is Verdict.TRIAL


async def test_at_the_threshold_the_longer_of_hint_and_recovery_wins(subject: Subject) -> None:
    b = subject.breaker
    await b.record_failure(KEY)
    await b.record_failure(KEY)
    assert await b.record_failure(KEY, retry_after=0.05) is True
    assert (await b.status(KEY)).retry_in > 0.2  # recovery_timeout (0.3), not 0.05


async def test_a_hint_while_open_extends_and_never_shortens(subject: Subject) -> None:
    b = subject.breaker
    for _ in range(3):
        await b.record_failure(KEY)
    assert await b.record_failure(KEY, retry_after=0.05) is False  # shorter: no change
    assert (await b.status(KEY)).retry_in > 0.2
    assert await b.record_failure(KEY, retry_after=0.6) is False  # a straggler's longer hint
    assert (await b.status(KEY)).retry_in > 0.5
    await subject.advance(RECOVERY + 0.05)
    assert not await b.allow(KEY)


async def test_a_429_hint_holds_the_candidate_without_opening(subject: Subject) -> None:
    b, peer = subject.breaker, subject.make_peer()
    await b.record_failure(KEY)  # one earlier failure

    await b.record_rate_limited(KEY, retry_after=0.4)

    status = await peer.status(KEY)
    assert status.state is BreakerState.CLOSED
    assert status.failures == 1  # rate limiting is not ill health, nor proof of health
    assert 0.3 < status.held_for <= 0.4 + EPS
    admission = await peer.admit(KEY)
    assert (admission.verdict, admission.reason) == (Verdict.REFUSED, Refusal.HELD)
    await b.record_success(KEY)  # another call answered: the quota is still exhausted
    assert not await peer.allow(KEY)

    await subject.advance(0.45)
    assert (await peer.admit(KEY)).verdict is Verdict.ALLOWED  # no trial after a hold
    assert (await b.admit(KEY)).verdict is Verdict.ALLOWED


async def test_a_429_without_hint_changes_nothing(subject: Subject) -> None:
    b = subject.breaker
    await b.record_failure(KEY)
    await b.record_failure(KEY)
    await b.record_rate_limited(KEY)
    assert (await b.status(KEY)).failures == 2
    await b.record_failure(KEY)
    assert (await b.status(KEY)).state is BreakerState.OPEN


async def test_a_trial_answered_429_closes_the_circuit(subject: Subject) -> None:
    b = subject.breaker
    for _ in range(3):
        await b.record_failure(KEY)
    await subject.advance(RECOVERY + 0.05)
    assert (await b.admit(KEY)).verdict is Verdict.TRIAL

    await b.record_rate_limited(KEY, retry_after=0.2)

    status = await b.status(KEY)
    assert (status.state, status.failures) == (BreakerState.CLOSED, 0)
    assert not await b.allow(KEY)  # held
    await subject.advance(0.25)
    assert await b.allow(KEY)


async def test_an_open_record_written_before_hints_keeps_its_recovery(
    redis_url: str, redis_prefix: str
) -> None:
    """A circuit opened by an older release (no ``r`` field) stays open for recovery_timeout."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    (seconds, micros) = await client.time()
    await client.hset(
        f"{redis_prefix}:{KEY}", mapping={"s": "open", "f": "3", "t": seconds + micros / 1e6}
    )
    await client.aclose()
    breaker = RedisCircuitBreaker(redis_url, BreakerSettings(3, RECOVERY), prefix=redis_prefix)

    assert not await breaker.allow(KEY)
    assert 0 < (await breaker.status(KEY)).retry_in <= RECOVERY + EPS
    await asyncio.sleep(RECOVERY + 0.05)
    assert (await breaker.admit(KEY)).verdict is Verdict.TRIAL
    await breaker.aclose()


# -- two instances: the hint is shared ----------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def breakers(request: pytest.FixtureRequest) -> Callable[[], CircuitBreaker]:
    """What each instance gets: the same memory breaker (one process), or its own Redis one."""
    settings = BreakerSettings(failure_threshold=3, recovery_timeout=60)
    if request.param == "memory":
        shared = MemoryCircuitBreaker(settings)
        return lambda: shared
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    return lambda: RedisCircuitBreaker(url, settings, prefix=prefix)


@pytest.mark.parametrize(("status", "state"), [(429, "closed"), (503, "open")])
async def test_another_instance_respects_the_hint(
    breakers: Callable[[], CircuitBreaker],
    openai_server: ScriptedOpenAIServer,
    ollama_server: ScriptedOllamaServer,
    status: int,
    state: str,
) -> None:
    def instance() -> ModelRouter:
        return ModelRouter(
            {"default": [openai(openai_server), ollama(ollama_server)]},
            breaker=breakers(),
            retry=RetryPolicy(retries=0),
        )

    a, b = instance(), instance()
    openai_server.push(Reply(status=status, headers={"Retry-After": "0.6"}), Reply("back"))
    ollama_server.push(Reply("fallback a"), Reply("fallback b"))

    assert (await a.complete(HELLO)).content == "fallback a"
    assert (await b.complete(HELLO)).content == "fallback b"  # b never called the primary
    assert len(openai_server.requests) == 1
    key = candidate_key(a.primary())
    assert b.breaker is not None
    assert (await b.breaker.status(key)).state == state

    await asyncio.sleep(0.65)
    assert (await b.complete(HELLO)).content == "back"  # after the hint: a hold ends, or the
    assert (await b.breaker.status(key)).state is BreakerState.CLOSED  # trial closes it
    for r in (a, b):
        await r.aclose()
        await r.breaker.aclose()  # type: ignore[union-attr]
