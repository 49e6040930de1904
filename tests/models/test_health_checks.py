"""Lazy health checks against the real scripted servers (made unhealthy with ``healthy``).

Time is a fake clock for the health evidence and the memory breaker, so intervals and
recovery are stepped through, not waited for.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from astromesh.models import Message, Model, ProviderSettings
from astromesh.models.breaker import BreakerSettings, BreakerState, MemoryCircuitBreaker
from astromesh.models.health import HealthChecks
from astromesh.models.hf_tgi import TGIModel
from astromesh.models.ollama import OllamaModel
from astromesh.models.openai_compat import LlamaCppServerModel, OpenAICompatModel, VLLMModel
from astromesh.models.router import ModelRouter, RetryPolicy
from astromesh.models.strategies import candidate_key
from tests.models.conftest import FakeClock
from tests.models.test_factory import PROVIDERS, load, provider_config, router_for
from tests.support.agents import agent_document
from tests.support.model_servers import (
    Reply,
    ScriptedOllamaServer,
    ScriptedOpenAIServer,
    ScriptedTGIServer,
)

HELLO = [Message.user("hi")]
INTERVAL = 30


def openai(
    server: ScriptedOpenAIServer | str, *, interval: float | None = INTERVAL, name: str = "primary"
) -> OpenAICompatModel:
    url = server if isinstance(server, str) else server.url
    return OpenAICompatModel(
        ProviderSettings(
            "openai_compat",
            "gpt-x",
            endpoint=url,
            name=name,
            timeout_seconds=5.0,
            health_check_interval=interval,
        )
    )


def ollama(server: ScriptedOllamaServer) -> OllamaModel:
    return OllamaModel(
        ProviderSettings(
            "ollama", "llama3", endpoint=server.url, name="fallback", timeout_seconds=5
        )
    )


class World:
    """A router over (primary: the OpenAI server, fallback: the Ollama server) whose health
    evidence and breaker run on one fake clock."""

    def __init__(
        self,
        openai_server: ScriptedOpenAIServer,
        ollama_server: ScriptedOllamaServer,
        *,
        interval: float | None = INTERVAL,
    ) -> None:
        self.clock = FakeClock()
        self.breaker = MemoryCircuitBreaker(
            BreakerSettings(failure_threshold=2, recovery_timeout=60), clock=self.clock
        )
        self.health = HealthChecks(clock=self.clock)
        self.primary = openai(openai_server, interval=interval)
        self.key = candidate_key(self.primary)
        self.router = ModelRouter(
            {"default": [self.primary, ollama(ollama_server)]},
            breaker=self.breaker,
            retry=RetryPolicy(retries=0),
            health_checks=self.health,
        )

    async def answer(self) -> str:
        return (await self.router.complete(HELLO)).content


@pytest.fixture
async def world(openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer) -> Any:
    w = World(openai_server, ollama_server)
    yield w
    await w.router.aclose()


def probes(server: ScriptedOpenAIServer) -> int:
    return server.get_paths.count("/v1/models")


# -- the lazy check in the router ---------------------------------------------------------------


async def test_an_unhealthy_candidate_is_skipped_and_counted(
    world: World, openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    openai_server.healthy = False
    ollama_server.push(Reply("fallback 1"), Reply("fallback 2"), Reply("fallback 3"))

    assert await world.answer() == "fallback 1"
    assert openai_server.requests == []  # the chat request was never sent
    assert (await world.breaker.status(world.key)).failures == 1

    assert await world.answer() == "fallback 2"  # the second failed probe opens the circuit
    assert (await world.breaker.status(world.key)).state is BreakerState.OPEN
    assert await world.answer() == "fallback 3"
    assert probes(openai_server) == 2  # an open circuit is skipped without probing


async def test_it_is_called_again_once_healthy(
    world: World, openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    openai_server.healthy = False
    ollama_server.push(Reply("fallback"), Reply("fallback"), Reply("fallback"))
    for _ in range(2):
        await world.answer()  # open
    world.clock.now += 61
    assert await world.answer() == "fallback"  # the trial's probe fails: open again
    assert (await world.breaker.status(world.key)).state is BreakerState.OPEN
    assert openai_server.requests == []

    openai_server.healthy = True
    openai_server.push(Reply("primary is back"), Reply("and stays"))
    world.clock.now += 61
    assert await world.answer() == "primary is back"  # trial: probe passes, call succeeds
    assert (await world.breaker.status(world.key)).state is BreakerState.CLOSED
    assert probes(openai_server) == 4
    assert await world.answer() == "and stays"
    assert probes(openai_server) == 4  # fresh evidence: no probe


async def test_the_interval_is_respected(world: World, openai_server: ScriptedOpenAIServer) -> None:
    openai_server.push(*(Reply(f"answer {i}") for i in range(4)))

    await world.answer()
    assert probes(openai_server) == 1  # no evidence yet (a cold instance): probe first
    world.clock.now += INTERVAL - 1
    await world.answer()
    assert probes(openai_server) == 1  # the first call's answer is evidence
    world.clock.now += INTERVAL - 1
    await world.answer()
    assert probes(openai_server) == 1  # and so is the second's: a busy instance never probes
    world.clock.now += INTERVAL
    await world.answer()  # idle (or frozen) for a whole interval: probe again
    assert probes(openai_server) == 2


async def test_without_an_interval_nothing_is_probed(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    w = World(openai_server, ollama_server, interval=None)
    openai_server.healthy = False
    openai_server.push(Reply(status=503), Reply(status=503), Reply("trial"))
    ollama_server.push(Reply("fallback"), Reply("fallback"))
    await w.answer()
    await w.answer()  # open
    w.clock.now += 61

    assert await w.answer() == "trial"  # the trial is the call itself
    assert openai_server.get_paths == []
    await w.router.aclose()


async def test_a_connection_cut_makes_the_next_request_probe(
    world: World, openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    openai_server.push(Reply("first"), Reply("cut", cut_after_chunks=0), Reply("third"))
    ollama_server.push(Reply("fallback"))
    await world.answer()
    assert probes(openai_server) == 1

    assert await world.answer() == "fallback"  # cut before a byte: no HTTP status
    await world.answer()
    assert probes(openai_server) == 2  # the evidence was dropped: probed before the call


async def test_concurrent_requests_share_one_probe(
    world: World, openai_server: ScriptedOpenAIServer
) -> None:
    openai_server.push(*(Reply("ok") for _ in range(5)))

    answers = await asyncio.gather(*(world.answer() for _ in range(5)))

    assert answers == ["ok"] * 5
    assert probes(openai_server) == 1


async def test_health_checks_cost_nothing_while_calls_succeed(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    """On real time, many calls within an interval probe once."""
    health = HealthChecks()
    router = ModelRouter(
        {"default": [openai(openai_server), ollama(ollama_server)]}, health_checks=health
    )
    openai_server.push(*(Reply("ok") for _ in range(20)))
    for _ in range(20):
        await router.complete(HELLO)
    assert health.probes == 1
    await router.aclose()


# -- each provider's probe -----------------------------------------------------------------------


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A server that accepts connections and never answers (a hung backend)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_each_provider_probes_its_own_endpoint(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    url = openai_server.url

    def settings(provider: str, endpoint: str) -> ProviderSettings:
        return ProviderSettings(provider, "m", endpoint=endpoint)

    with ScriptedTGIServer() as tgi:
        cases: list[tuple[Model, Any, str]] = [
            (openai(openai_server), openai_server, "/v1/models"),
            (VLLMModel(settings("vllm", url)), openai_server, "/health"),
            (LlamaCppServerModel(settings("llamacpp", url)), openai_server, "/health"),
            (ollama(ollama_server), ollama_server, "/api/tags"),
            (TGIModel(settings("hf_tgi", tgi.url)), tgi, "/health"),
            (TGIModel(settings("hf_tgi", tgi.url + "/v1")), tgi, "/health"),  # messages API
        ]
        for model, server, path in cases:
            server.healthy = True
            assert await model.probe(1.0) is True
            assert server.get_paths[-1] == path
            server.healthy = False
            assert await model.probe(1.0) is False
            server.healthy = True
            await model.aclose()


async def test_a_probe_fails_on_refusal_and_on_silence_within_its_timeout(
    closed_port_url: str, silent_url: str
) -> None:
    assert await openai(closed_port_url + "/v1").probe(1.0) is False
    hung = openai(silent_url + "/v1")
    started = time.perf_counter()
    assert await hung.probe(0.2) is False
    assert time.perf_counter() - started < 1.0
    await hung.aclose()


async def test_a_missing_health_endpoint_is_not_held_against_a_model(
    ollama_server: ScriptedOllamaServer,
) -> None:
    # An OpenAI-compatible model pointed at a server without /v1/models: 404, not unhealthy.
    model = openai(ollama_server.url + "/v1")
    assert await model.probe(1.0) is True
    assert await model.health() is False  # the report stays strict
    await model.aclose()


async def test_a_hung_health_endpoint_costs_the_probe_timeout_not_the_request_timeout(
    silent_url: str, ollama_server: ScriptedOllamaServer
) -> None:
    health = HealthChecks(probe_timeout=0.2)
    router = ModelRouter(
        {"default": [openai(silent_url + "/v1"), ollama(ollama_server)]},
        retry=RetryPolicy(retries=0),
        health_checks=health,
    )
    ollama_server.push(Reply("fallback"))
    started = time.perf_counter()
    assert (await router.complete(HELLO)).content == "fallback"
    assert time.perf_counter() - started < 1.0  # the request timeout is 5 s
    await router.aclose()


# -- the background loop (long-lived processes) --------------------------------------------------


async def test_the_background_loop_probes_due_candidates(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    clock = FakeClock()
    breaker = MemoryCircuitBreaker(BreakerSettings(failure_threshold=1), clock=clock)
    health = HealthChecks(clock=clock)
    sick = openai(openai_server)
    router = ModelRouter(
        {"default": [sick, ollama(ollama_server)]}, breaker=breaker, health_checks=health
    )
    # Building a router registers nothing (a document posted to the API is checked by
    # building it: its endpoints must not be probed); its first call registers its
    # candidates, as this does (the Ollama one has no interval: not looked after).
    assert await health.probe_due() == math.inf
    health.register(router.models(), breaker)
    openai_server.healthy = False

    assert await health.probe_due() == INTERVAL
    assert (await breaker.status(candidate_key(sick))).state is BreakerState.OPEN
    assert await health.probe_due() == INTERVAL  # probed just now (failed): not due again
    assert probes(openai_server) == 1

    async with health.running():
        await asyncio.sleep(0.2)  # the first round runs at once: still within the interval
    assert probes(openai_server) == 1
    clock.now += INTERVAL
    async with health.running():
        await asyncio.sleep(0.2)
    assert probes(openai_server) == 2
    assert ollama_server.get_paths == []
    await router.aclose()


# -- configuration -------------------------------------------------------------------------------


def intervals(router: ModelRouter) -> list[float | None]:
    return [m.settings.health_check_interval for m in router.candidates()]


def test_the_interval_comes_from_the_agent_then_the_provider_entry(tmp_path: Path) -> None:
    providers = {**PROVIDERS, "gpu": {**PROVIDERS["gpu"], "health_check_interval": 5}}
    candidates = {
        "primary": {"provider": "openai", "model": "gpt-4o"},
        "fallback": [
            {"provider": "gpu", "model": "llama"},
            {"provider": "ollama", "model": "llama3", "endpoint": "http://127.0.0.1:9"},
        ],
    }
    plain = agent_document("helper", model=candidates)
    routed = agent_document(
        "routed", model={**candidates, "routing": {"health_check_interval": 12}}
    )
    off = agent_document("off", model={**candidates, "routing": {"health_check_interval": 0}})
    result = load(tmp_path, provider_config(**providers), plain, routed, off)

    # entry default (30), entry's own (5), inline candidate: none
    assert intervals(router_for(result, "helper")) == [30, 5, None]
    assert intervals(router_for(result, "routed")) == [12, 12, 12]  # the agent's wins
    assert intervals(router_for(result, "off")) == [None, None, None]


async def test_routers_of_one_runtime_share_health_evidence(tmp_path: Path) -> None:
    from astromesh.runtime import AgentRuntime

    docs = [
        provider_config(**PROVIDERS),
        agent_document("one", model={"primary": {"provider": "openai", "model": "gpt-4o"}}),
        agent_document("two", model={"primary": {"provider": "openai", "model": "gpt-4o"}}),
    ]
    load(tmp_path / "agents", *docs)
    env = {"OPENAI_KEY": "sk-x", "ASTROMESH_STATE_PATH": str(tmp_path / "state.db")}
    runtime = AgentRuntime(tmp_path / "agents", env=env)
    one, two = await runtime.get("one"), await runtime.get("two")
    assert one.router.health_checks is two.router.health_checks is runtime.health_checks
    await runtime.close()
