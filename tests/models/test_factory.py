"""build_router: agent documents plus ProviderConfig into a router, both spec.model forms alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from astromesh.config import load_path
from astromesh.models import Message
from astromesh.models.breaker import MemoryCircuitBreaker
from astromesh.models.breaker_redis import RedisCircuitBreaker
from astromesh.models.factory import breaker_for, build_router, price_table
from astromesh.models.hf_tgi import TGIModel
from astromesh.models.openai_compat import VLLMModel
from tests.support.agents import agent_document
from tests.support.model_servers import Reply, ScriptedOllamaServer, ScriptedOpenAIServer


def provider_config(routing: dict[str, Any] | None = None, **providers: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"providers": providers}
    if routing is not None:
        spec["routing"] = routing
    return {
        "apiVersion": "astromesh/v1",
        "kind": "ProviderConfig",
        "metadata": {"name": "providers"},
        "spec": spec,
    }


def load(tmp_path: Path, *docs: dict[str, Any]) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    for index, doc in enumerate(docs):
        (tmp_path / f"{index}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = load_path(tmp_path, env={"OPENAI_KEY": "sk-test"})
    assert not result.errors, result.errors
    return result


def router_for(result: Any, name: str = "helper", **kwargs: Any) -> Any:
    return build_router(
        result.agents[name], result.providers, result.routing, {"OPENAI_KEY": "sk-x"}, **kwargs
    )


PROVIDERS = {
    "openai": {
        "type": "openai_compat",
        "endpoint": "http://127.0.0.1:9/v1",
        "api_key_env": "OPENAI_KEY",
        "models": ["gpt-4o", "gpt-4o-mini"],
        "timeout_seconds": 12,
        "pricing": {"gpt-4o-mini": {"input_per_million": 1, "output_per_million": 2}},
    },
    "gpu": {"type": "vllm", "endpoint": "http://127.0.0.1:9/v1", "models": ["llama"]},
    "tgi": {"type": "hf_tgi", "endpoint": "http://127.0.0.1:9", "models": ["mistral"]},
}


def test_both_model_forms_resolve_to_the_same_candidates(tmp_path: Path) -> None:
    primary_form = agent_document(
        "primary-form",
        model={
            "primary": {"provider": "openai", "model": "gpt-4o"},
            "fallback": [{"provider": "gpu", "model": "llama"}],
        },
    )
    role_form = agent_document(
        "role-form",
        model={
            "default": {
                "candidates": [
                    {"provider": "openai", "model": "gpt-4o"},
                    {"provider": "gpu", "model": "llama"},
                ]
            },
            "roles": {"planner": {"candidates": [{"provider": "tgi", "model": "mistral"}]}},
        },
    )
    result = load(tmp_path, provider_config(**PROVIDERS), primary_form, role_form)

    a, b = router_for(result, "primary-form"), router_for(result, "role-form")

    def shape(models: list[Any]) -> list[tuple[str, str, str | None]]:
        return [(m.settings.label, m.model, m.settings.endpoint) for m in models]

    assert shape(a.candidates()) == shape(b.candidates())
    assert isinstance(a.candidates()[1], VLLMModel)
    openai = a.primary()
    assert openai.settings.api_key == "sk-x" and openai.settings.timeout_seconds == 12
    assert isinstance(b.primary("planner"), TGIModel)
    assert b.candidates("worker") == b.candidates()  # unknown roles use the default's


def test_strategy_precedence(tmp_path: Path) -> None:
    explicit = agent_document(
        "explicit",
        model={
            "primary": {"provider": "openai", "model": "gpt-4o"},
            "routing": {"strategy": "latency_optimized"},
        },
    )
    silent = agent_document("silent", model={"primary": {"provider": "openai", "model": "gpt-4o"}})
    roles = agent_document(
        "roles",
        model={
            "default": {"candidates": [{"provider": "openai", "model": "gpt-4o"}]},
            "roles": {
                "worker": {
                    "candidates": [{"provider": "gpu", "model": "llama"}],
                    "strategy": "round_robin",
                }
            },
        },
    )
    without_routing = load(tmp_path / "a", provider_config(**PROVIDERS), explicit, silent)
    assert router_for(without_routing, "explicit").strategy_name() == "latency_optimized"
    assert router_for(without_routing, "silent").strategy_name() == "quality_first"

    routing = {"default_strategy": "cost_optimized", "fallback_enabled": False}
    with_routing = load(tmp_path / "b", provider_config(routing, **PROVIDERS), silent, roles)
    silent_router = router_for(with_routing, "silent")
    assert silent_router.strategy_name() == "cost_optimized"
    assert silent_router.fallback_enabled is False
    roles_router = router_for(with_routing, "roles")
    assert roles_router.strategy_name("worker") == "round_robin"
    assert roles_router.strategy_name() == "cost_optimized"


def test_prices_come_from_provider_pricing_then_defaults(tmp_path: Path) -> None:
    result = load(tmp_path, provider_config(**PROVIDERS), agent_document())
    table = price_table(result.providers)
    assert table.price("openai_compat", "openai", "gpt-4o-mini").input_per_million == 1
    assert table.price("openai_compat", "openai", "gpt-4o").input_per_million == 2.5
    assert table.price("vllm", "gpu", "llama").cost(10**6, 10**6) == 0


def test_breaker_follows_routing_circuit_breaker(tmp_path: Path, redis_url: str) -> None:
    routing = {"circuit_breaker": {"failure_threshold": 5, "recovery_timeout": 7}}
    result = load(tmp_path, provider_config(routing, **PROVIDERS), agent_document())
    memory = breaker_for(result.routing, None)
    assert isinstance(memory, MemoryCircuitBreaker)
    assert (memory.settings.failure_threshold, memory.settings.recovery_timeout) == (5, 7)
    assert isinstance(breaker_for(result.routing, redis_url), RedisCircuitBreaker)
    assert breaker_for(None, None).settings.failure_threshold == 3


async def test_a_built_router_falls_back_and_prices_the_call(
    tmp_path: Path, openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    doc = agent_document(
        model={
            "primary": {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "endpoint": openai_server.url,
            },
            "fallback": {"provider": "ollama", "model": "llama3.1", "endpoint": ollama_server.url},
        }
    )
    result = load(tmp_path, provider_config(**PROVIDERS), doc)
    router = router_for(result, breaker=breaker_for(None, None))
    openai_server.push(Reply(status=500), Reply(status=500))  # one attempt + one retry
    ollama_server.push(Reply("local answer"))
    openai_server.push(Reply("paid answer", tokens_in=10**6, tokens_out=0))

    first = await router.complete([Message.user("hi")])
    second = await router.complete([Message.user("hi")])

    assert (first.content, first.cost) == ("local answer", 0.0)
    assert (second.content, second.cost) == ("paid answer", pytest.approx(1.0))
    await router.aclose()


def test_capabilities_declared_in_provider_config_drive_capability_match(tmp_path: Path) -> None:
    providers = {
        "gpu": {
            "type": "vllm",
            "endpoint": "http://127.0.0.1:9/v1",
            "models": ["small", "seeing"],
            "capabilities": {
                "small": {"tools": False, "context_window": 2048},
                "seeing": {"vision": True, "tools": True},
            },
        }
    }
    agent = agent_document(
        model={
            "primary": {"provider": "gpu", "model": "small"},
            "fallback": [{"provider": "gpu", "model": "seeing"}],
            "routing": {"strategy": "capability_match"},
        }
    )
    router = router_for(load(tmp_path, provider_config(**providers), agent))
    small, seeing = router.candidates()
    assert (small.capabilities.tools, small.capabilities.context_window) == (False, 2048)
    assert (seeing.capabilities.vision, seeing.capabilities.tools) == (True, True)
    # a request with tools goes only to the model that declares them
    from astromesh.models.types import ToolDefinition

    planned = router.plan([Message.user("hi")], tools=[ToolDefinition(name="t")])
    assert [m.model for m in planned] == ["seeing"]


def test_an_unknown_capability_name_is_a_config_error(tmp_path: Path) -> None:
    providers = {"gpu": {"type": "vllm", "models": ["m"], "capabilities": {"m": {"vison": True}}}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(provider_config(**providers)))
    [issue] = load_path(tmp_path).errors
    assert issue.field == "spec.providers.gpu.capabilities.m.vison"
    assert "did you mean 'vision'?" in str(issue)
