"""ModelSpec.candidates() / strategy() / roles() for both upstream forms."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from astromesh.config import ModelSpec


def spec(data: dict[str, Any]) -> ModelSpec:
    return ModelSpec.model_validate(data)


PRIMARY = {"provider": "ollama", "model": "llama3.1:8b"}
FALLBACK = {"provider": "openai_compat", "model": "gpt-4o-mini"}


def test_primary_only() -> None:
    m = spec({"primary": PRIMARY})
    assert [c.model for c in m.candidates()] == ["llama3.1:8b"]
    assert m.strategy() == "cost_optimized"
    assert m.roles() == ["default"]
    assert not m.uses_roles


def test_primary_with_one_fallback_mapping() -> None:
    m = spec({"primary": PRIMARY, "fallback": FALLBACK, "routing": {"strategy": "round_robin"}})
    assert [c.provider for c in m.candidates()] == ["ollama", "openai_compat"]
    # every role gets the same chain in the primary form
    assert m.candidates("planner") == m.candidates()
    assert m.strategy("planner") == "round_robin"


def test_primary_with_fallback_list() -> None:
    m = spec({"primary": PRIMARY, "fallback": [FALLBACK, {"provider": "vllm", "model": "x"}]})
    assert [c.provider for c in m.candidates()] == ["ollama", "openai_compat", "vllm"]


def test_role_form() -> None:
    m = spec(
        {
            "default": {"candidates": [{"source": "ollama", "model": "small"}]},
            "roles": {
                "planner": {"candidates": [FALLBACK], "strategy": "quality_first"},
                "critic": {"candidates": {"provider": "vllm", "model": "judge"}},
            },
        }
    )
    assert m.uses_roles
    assert m.roles() == ["default", "planner", "critic"]
    assert [c.model for c in m.candidates()] == ["small"]
    assert [c.model for c in m.candidates("planner")] == ["gpt-4o-mini"]
    assert [c.model for c in m.candidates("critic")] == ["judge"]
    assert [c.model for c in m.candidates("unknown-role")] == ["small"]
    assert m.strategy() == "cost_optimized"
    assert m.strategy("planner") == "quality_first"
    assert m.strategy("unknown-role") == "cost_optimized"


def test_role_form_default_strategy() -> None:
    m = spec({"default": {"candidates": [PRIMARY], "strategy": "latency_optimized"}})
    assert m.strategy("anything") == "latency_optimized"


def test_all_candidates_paths() -> None:
    m = spec({"default": {"candidates": [PRIMARY]}, "roles": {"p": {"candidates": [PRIMARY]}}})
    assert [path for path, _ in m.all_candidates()] == [
        ("default", "candidates", 0),
        ("roles", "p", "candidates", 0),
    ]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({}, "no model given"),
        ({"primary": PRIMARY, "default": {"candidates": [PRIMARY]}}, "mixes the primary form"),
        ({"fallback": FALLBACK}, "missing required field 'primary'"),
        ({"roles": {"p": {"candidates": [PRIMARY]}}}, "missing required field 'default'"),
    ],
)
def test_invalid_forms(data: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        spec(data)


def test_parameters_pass_provider_specific_keys() -> None:
    m = spec({"primary": {**PRIMARY, "parameters": {"temperature": 0.1, "num_ctx": 4096}}})
    params = m.candidates()[0].parameters
    assert params.temperature == 0.1
    assert params.model_dump(exclude_none=True) == {"temperature": 0.1, "num_ctx": 4096}


def test_parameters_are_range_checked() -> None:
    with pytest.raises(ValidationError):
        spec({"primary": {**PRIMARY, "parameters": {"temperature": 3}}})
