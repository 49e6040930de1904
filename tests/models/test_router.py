"""ModelRouter against real scripted servers: fallback, retries, strategies, capabilities, cost."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from astromesh.errors import ProviderError, ProviderUnavailable
from astromesh.models import GenerationParams, Message, Model, ProviderSettings, ToolDefinition
from astromesh.models.breaker import BreakerSettings, BreakerState, MemoryCircuitBreaker
from astromesh.models.catalog import Price, PriceTable
from astromesh.models.ollama import OllamaModel
from astromesh.models.openai_compat import OpenAICompatModel
from astromesh.models.router import ModelRouter, RetryPolicy
from astromesh.models.strategies import candidate_key
from astromesh.models.types import ModelResponse, TextDelta
from astromesh.runs.state import RunUsage
from tests.support.model_servers import Reply, ScriptedOllamaServer, ScriptedOpenAIServer

HELLO = [Message.user("hi")]
ADD = ToolDefinition(name="add", parameters={"type": "object", "properties": {}})
NO_RETRY = RetryPolicy(retries=0)


def openai(
    server: ScriptedOpenAIServer | str, model: str = "gpt-4o-mini", **settings: Any
) -> OpenAICompatModel:
    url = server if isinstance(server, str) else server.url
    settings.setdefault("timeout_seconds", 5.0)
    return OpenAICompatModel(ProviderSettings("openai_compat", model, endpoint=url, **settings))


def ollama(server: ScriptedOllamaServer, model: str = "llama3.1:8b", **settings: Any) -> Model:
    settings.setdefault("timeout_seconds", 5.0)
    return OllamaModel(ProviderSettings("ollama", model, endpoint=server.url, **settings))


def router(*models: Model, **kwargs: Any) -> ModelRouter:
    kwargs.setdefault("retry", NO_RETRY)
    return ModelRouter({"default": list(models)}, **kwargs)


@pytest.fixture
def second_openai() -> Any:
    with ScriptedOpenAIServer() as server:
        yield server


# -- fallback and retries ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_falls_back_in_declared_order_on_transient_statuses(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer, status: int
) -> None:
    openai_server.push(Reply("overloaded", status=status))
    ollama_server.push(Reply("from the fallback"))
    r = router(openai(openai_server), ollama(ollama_server))

    response = await r.complete(HELLO)

    assert response.content == "from the fallback"
    assert (len(openai_server.requests), len(ollama_server.requests)) == (1, 1)
    await r.aclose()


async def test_retries_the_same_candidate_before_falling_back(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    openai_server.push(Reply(status=500), Reply(status=429), Reply(status=503))
    ollama_server.push(Reply("fallback"))
    r = router(
        openai(openai_server),
        ollama(ollama_server),
        retry=RetryPolicy(retries=2, base_delay=0.01, max_delay=0.02),
    )

    assert (await r.complete(HELLO)).content == "fallback"
    assert len(openai_server.requests) == 3  # 1 attempt + 2 retries, then the fallback
    assert len(ollama_server.requests) == 1
    await r.aclose()


async def test_a_retry_that_succeeds_needs_no_fallback(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    openai_server.push(Reply("rate limited", status=429), Reply("second try"))
    r = router(openai(openai_server), ollama(ollama_server), retry=RetryPolicy(1, base_delay=0.01))

    assert (await r.complete(HELLO)).content == "second try"
    assert ollama_server.requests == []
    await r.aclose()


def test_backoff_is_jittered_and_bounded() -> None:
    policy = RetryPolicy(retries=5, base_delay=0.1, max_delay=0.5)
    random.seed(1)
    delays = [[policy.delay(n) for _ in range(200)] for n in (1, 2, 3, 6)]
    caps = [0.1, 0.2, 0.4, 0.5]
    for samples, cap in zip(delays, caps, strict=True):
        assert all(0 <= d <= cap for d in samples)
        assert len(set(samples)) > 150  # jittered, not a fixed schedule
        assert max(samples) > cap * 0.9


async def test_connection_refused_and_timeouts_fall_back(
    closed_port_url: str, openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    openai_server.push(Reply("too late", delay=2.0))
    ollama_server.push(Reply("answered"))
    r = router(
        openai(closed_port_url + "/v1", name="down"),
        openai(openai_server, name="slow", timeout_seconds=0.3),
        ollama(ollama_server),
    )
    started = time.perf_counter()

    assert (await r.complete(HELLO)).content == "answered"
    assert time.perf_counter() - started < 1.5  # the stall cost its timeout, not the delay
    await r.aclose()


async def test_a_stream_that_spoke_is_not_restarted_elsewhere(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    openai_server.push(Reply("half an answer that is cut", cut_after_chunks=3))
    ollama_server.push(Reply("never used"))
    r = router(openai(openai_server), ollama(ollama_server))
    seen: list[Any] = []

    with pytest.raises(ProviderError) as caught:
        async for event in r.stream(HELLO):
            seen.append(event)

    assert caught.value.retryable is True  # the error surfaces as it is
    assert [e for e in seen if isinstance(e, TextDelta)]  # the user saw tokens
    assert ollama_server.requests == []
    await r.aclose()


async def test_a_stream_cut_before_any_token_falls_back(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    # The first OpenAI chunk is the empty role delta: cut after it, nothing was said yet.
    openai_server.push(Reply("never arrives", cut_after_chunks=1))
    ollama_server.push(Reply("clean answer"))
    r = router(openai(openai_server), ollama(ollama_server))

    events = [e async for e in r.stream(HELLO)]

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "clean answer"
    await r.aclose()


async def test_client_errors_are_raised_without_fallback(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    openai_server.push(Reply("unknown field 'foo'", status=400))
    r = router(openai(openai_server), ollama(ollama_server), retry=RetryPolicy(retries=3))

    with pytest.raises(ProviderError) as caught:
        await r.complete(HELLO)

    assert caught.value.status_code == 400 and not caught.value.retryable
    assert len(openai_server.requests) == 1 and ollama_server.requests == []
    await r.aclose()


async def test_every_candidate_failing_is_provider_unavailable(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    openai_server.push(Reply("primary down", status=503))
    ollama_server.push(Reply("fallback down", status=500))
    r = router(openai(openai_server), ollama(ollama_server))

    with pytest.raises(ProviderUnavailable) as caught:
        await r.complete(HELLO)

    message = caught.value.message
    assert "every candidate failed:" in message
    assert "primary down" in message and "fallback down" in message
    await r.aclose()


async def test_fallback_disabled_tries_only_the_first(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    openai_server.push(Reply(status=500))
    r = router(openai(openai_server), ollama(ollama_server), fallback_enabled=False)

    with pytest.raises(ProviderUnavailable):
        await r.complete(HELLO)
    assert ollama_server.requests == []
    await r.aclose()


async def test_max_attempts_caps_the_whole_request(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    openai_server.push(Reply(status=500), Reply(status=500))
    r = router(
        openai(openai_server),
        ollama(ollama_server),
        retry=RetryPolicy(retries=1, base_delay=0.0, max_attempts=2),
    )

    with pytest.raises(ProviderUnavailable):
        await r.complete(HELLO)
    assert len(openai_server.requests) == 2 and ollama_server.requests == []
    await r.aclose()


# -- circuit breaker in the router -------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_open_circuit_is_skipped_until_its_trial(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    clock = FakeClock()
    breaker = MemoryCircuitBreaker(BreakerSettings(2, recovery_timeout=30), clock=clock)
    primary = openai(openai_server, name="primary")
    r = router(primary, ollama(ollama_server), breaker=breaker)
    openai_server.push(Reply(status=500), Reply(status=500))
    ollama_server.push(*(Reply(f"fallback {i}") for i in range(4)))

    for _ in range(3):
        await r.complete(HELLO)

    assert len(openai_server.requests) == 2  # the third call skipped the open circuit
    assert (await breaker.status(candidate_key(primary))).state is BreakerState.OPEN

    clock.now += 31
    openai_server.push(Reply("primary is back"))
    assert (await r.complete(HELLO)).content == "primary is back"  # the trial call
    assert (await breaker.status(candidate_key(primary))).state is BreakerState.CLOSED
    await r.aclose()


async def test_every_circuit_open_is_provider_unavailable(
    openai_server: ScriptedOpenAIServer,
) -> None:
    breaker = MemoryCircuitBreaker(BreakerSettings(1, recovery_timeout=60))
    model = openai(openai_server, name="only")
    r = router(model, breaker=breaker)
    openai_server.push(Reply(status=503))
    with pytest.raises(ProviderUnavailable):
        await r.complete(HELLO)

    with pytest.raises(ProviderUnavailable) as caught:
        await r.complete(HELLO)

    assert "circuit open" in caught.value.message
    assert len(openai_server.requests) == 1
    await r.aclose()


# -- strategies --------------------------------------------------------------------------------


def plan_names(r: ModelRouter, **kwargs: Any) -> list[str]:
    return [m.model for m in r.plan(HELLO, **kwargs)]


def test_quality_first_is_the_declared_order() -> None:
    r = router(openai("http://a/v1", "gpt-4o"), openai("http://b/v1", "gpt-4o-mini"))
    assert plan_names(r) == ["gpt-4o", "gpt-4o-mini"]
    assert r.strategy_name() == "quality_first"


def test_cost_optimized_orders_by_estimated_request_cost() -> None:
    models = [
        openai("http://a/v1", "gpt-4o"),
        openai("http://b/v1", "some-unlisted-model"),
        openai("http://c/v1", "gpt-4o-mini"),
        OllamaModel(ProviderSettings("ollama", "llama3.1:8b")),
    ]
    r = router(*models, default_strategy="cost_optimized")
    # Local first (free), then by price; an unknown price goes last.
    assert plan_names(r) == ["llama3.1:8b", "gpt-4o-mini", "gpt-4o", "some-unlisted-model"]

    overridden = router(
        *models,
        default_strategy="cost_optimized",
        prices=PriceTable(overrides={("ollama", "llama3.1:8b"): Price(50.0, 50.0)}),
    )
    assert plan_names(overridden)[0] == "gpt-4o-mini"


async def test_latency_optimized_prefers_the_observed_faster_candidate(
    openai_server: ScriptedOpenAIServer, second_openai: ScriptedOpenAIServer
) -> None:
    slow, fast = openai(openai_server, name="slow"), openai(second_openai, name="fast")
    r = router(slow, fast, default_strategy="latency_optimized")
    openai_server.push(Reply("slow", delay=0.25))
    second_openai.push(*(Reply("fast") for _ in range(4)))

    # Never observed candidates go first (in declared order), so each gets measured once.
    assert (await r.complete(HELLO)).content == "slow"
    assert (await r.complete(HELLO)).content == "fast"
    for _ in range(3):
        assert (await r.complete(HELLO)).content == "fast"

    ewma = r.stats.latency_ms
    assert ewma[candidate_key(slow)] > 200 > ewma[candidate_key(fast)]
    await r.aclose()


async def test_round_robin_rotates_the_first_candidate(
    openai_server: ScriptedOpenAIServer, second_openai: ScriptedOpenAIServer
) -> None:
    a, b = openai(openai_server, name="a"), openai(second_openai, name="b")
    r = router(a, b, default_strategy="round_robin")
    openai_server.push(*(Reply("a") for _ in range(2)))
    second_openai.push(*(Reply("b") for _ in range(2)))

    answers = [(await r.complete(HELLO)).content for _ in range(4)]

    assert answers == ["a", "b", "a", "b"]
    assert [m.settings.name for m in r.plan(HELLO)] == ["a", "b"]  # rotation continues
    await r.aclose()


def capable(name: str, **caps: Any) -> OpenAICompatModel:
    return openai(f"http://{name}/v1", f"model-{name}", options={"capabilities": caps})


def test_capability_match_filters_by_what_the_request_needs() -> None:
    plain = capable("plain", tools=False, json_mode=False, context_window=4096)
    tools = capable("tools", tools=True, json_mode=False, context_window=8192)
    vision = capable("vision", tools=True, vision=True, json_mode=True, context_window=128_000)
    r = router(plain, tools, vision, default_strategy="capability_match")

    assert plan_names(r) == ["model-plain", "model-tools", "model-vision"]
    assert plan_names(r, tools=[ADD]) == ["model-tools", "model-vision"]
    assert plan_names(r, requires={"vision"}) == ["model-vision"]
    as_json = GenerationParams(response_format={"type": "json_object"})
    assert plan_names(r, params=as_json) == ["model-vision"]
    long_prompt = [Message.user("word " * 8000)]  # ~10k tokens
    assert [m.model for m in r.plan(long_prompt)] == ["model-vision"]


def test_capability_match_with_no_capable_candidate_says_why() -> None:
    r = router(capable("plain", tools=False), default_strategy="capability_match")

    with pytest.raises(ProviderUnavailable) as caught:
        r.plan(HELLO, tools=[ADD], requires={"vision"})

    assert "needing tools, vision" in caught.value.message
    assert "lacks tools, vision" in caught.value.message
    assert caught.value.retryable is False


def test_other_strategies_do_not_filter_by_capability() -> None:
    r = router(capable("plain", tools=False), capable("tools", tools=True))
    assert plan_names(r, tools=[ADD]) == ["model-plain", "model-tools"]


def test_capabilities_come_from_class_defaults_then_known_models() -> None:
    assert openai("http://x/v1", "gpt-4o").capabilities.vision is True
    assert openai("http://x/v1", "gpt-4o").capabilities.context_window == 128_000
    assert openai("http://x/v1", "my-finetune").capabilities.vision is False
    ollama_vision = OllamaModel(ProviderSettings("ollama", "llama3.2-vision:11b"))
    assert ollama_vision.capabilities.vision is True


# -- roles, usage and cost ---------------------------------------------------------------------


async def test_roles_use_their_own_candidates(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    default, planner = openai(openai_server), ollama(ollama_server)
    r = ModelRouter({"default": [default], "planner": [planner]}, retry=NO_RETRY)
    ollama_server.push(Reply("plan"))
    openai_server.push(Reply("work"))

    assert (await r.complete(HELLO, role="planner")).content == "plan"
    assert (await r.complete(HELLO, role="worker")).content == "work"  # unknown -> default
    assert r.primary("planner") is planner and r.candidates("worker") == [default]
    assert len(r.models()) == 2
    await r.aclose()


async def test_cost_is_set_per_call_and_sums_into_run_usage(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    paid = openai(openai_server, "gpt-4o-mini", name="openai")
    local = ollama(ollama_server)
    r = ModelRouter({"default": [paid], "worker": [local]}, retry=NO_RETRY)
    openai_server.push(
        Reply("a", tokens_in=1000, tokens_out=500), Reply("b", tokens_in=2000, tokens_out=0)
    )
    ollama_server.push(Reply("c", tokens_in=300, tokens_out=30))
    usage = RunUsage()

    for role in ("default", "default", "worker"):
        response = await r.complete(HELLO, role=role)
        assert response.cost is not None
        usage.add(
            provider=response.provider,
            model=response.model,
            role=role,
            usage=response.usage,
            cost=response.cost,
        )

    first = (1000 * 0.15 + 500 * 0.60) / 1e6
    second = 2000 * 0.15 / 1e6
    assert usage.cost == pytest.approx(first + second)
    lines = {(line.provider, line.role): line for line in usage.by_model}
    assert lines[("openai", "default")].calls == 2
    assert lines[("openai", "default")].tokens_in == 3000
    assert lines[("ollama", "worker")].cost == 0.0  # local providers cost nothing
    await r.aclose()


async def test_configured_prices_override_the_defaults(
    openai_server: ScriptedOpenAIServer,
) -> None:
    model = openai(openai_server, "gpt-4o-mini", name="azure")
    prices = PriceTable(overrides={("azure", "gpt-4o-mini"): Price(1.0, 2.0)})
    r = router(model, prices=prices)
    openai_server.push(Reply("x", tokens_in=1_000_000, tokens_out=1_000_000))

    response = await r.complete(HELLO)

    assert response.cost == pytest.approx(3.0)
    await r.aclose()


async def test_stream_ends_with_one_final_response(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.push(Reply("streamed"))
    r = router(openai(openai_server))

    events = [e async for e in r.stream(HELLO)]

    assert isinstance(events[-1], ModelResponse)
    assert sum(isinstance(e, ModelResponse) for e in events) == 1
    await r.aclose()


async def test_health_reports_each_candidate(
    openai_server: ScriptedOpenAIServer, closed_port_url: str
) -> None:
    up, down = openai(openai_server, name="up"), openai(closed_port_url + "/v1", name="down")
    r = router(up, down)
    assert await r.health() == {candidate_key(up): True, candidate_key(down): False}
    await r.aclose()
