"""The ``ProviderConfig`` document: named model endpoints shared by every agent.

An agent's candidate may name one of these entries as its ``provider`` instead of a provider
type; the loader checks those names across documents.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from astromesh.config.base import ConfigDocument, ConfigModel
from astromesh.config.constants import DEFAULT_STRATEGY, ENV_VAR_RE
from astromesh.config.issues import config_error
from astromesh.config.model_spec import Strategy

ProviderType = Literal["openai_compat", "vllm", "llamacpp", "ollama", "hf_tgi", "onnx"]


class ModelPricing(ConfigModel):
    """Price of one model in currency units per million tokens (for cost routing and the
    ledger)."""

    input_per_million: float = Field(0, ge=0)
    output_per_million: float = Field(0, ge=0)


class ModelCapabilities(ConfigModel):
    """What one model declares it can do; unset fields keep the router's defaults (the
    provider type's, or its table of well-known models). ``capability_match`` routing only
    sends a request to candidates that declare what it needs."""

    chat: bool | None = None
    tools: bool | None = None
    vision: bool | None = None
    json_mode: bool | None = None
    context_window: int | None = Field(None, ge=1)


class ProviderEntry(ConfigModel):
    """One named endpoint of a provider type, with the models it serves."""

    type: ProviderType
    endpoint: str | None = None
    api_key_env: str | None = None
    models: list[str] = Field(default_factory=list)
    health_check_interval: int = Field(30, ge=0)
    """Seconds after which the router probes this endpoint's health before calling it, when
    no call has shown it up since (see ``astromesh.models.health``); 0 turns the checks off.
    An agent's ``spec.model.routing.health_check_interval`` takes precedence."""
    timeout_seconds: float | None = Field(None, gt=0)
    pricing: dict[str, ModelPricing] = Field(default_factory=dict)
    capabilities: dict[str, ModelCapabilities] = Field(default_factory=dict)
    """Per model name, what it can do (for ``capability_match`` and the context budget)."""

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_VAR_RE.match(value):
            raise config_error(
                "api_key_env is the *name* of an environment variable holding the key"
                " (e.g. OPENAI_API_KEY), not the key itself"
            )
        return value


class CircuitBreaker(ConfigModel):
    """Open a provider's circuit after ``failure_threshold`` consecutive failures; probe it
    with one trial call after ``first_trial_after`` seconds, then after twice as long after
    each failed trial, never waiting more than ``recovery_timeout`` seconds."""

    failure_threshold: int = Field(3, ge=1)
    recovery_timeout: float = Field(60, gt=0)
    first_trial_after: float = Field(2, gt=0)


class RoutingConfig(ConfigModel):
    """Routing defaults for every agent."""

    default_strategy: Strategy = DEFAULT_STRATEGY
    fallback_enabled: bool = True
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)


class ProviderConfigSpec(ConfigModel):
    """``spec`` of a ProviderConfig."""

    providers: dict[str, ProviderEntry] = Field(default_factory=dict)
    routing: RoutingConfig | None = None


class ProviderConfigDocument(ConfigDocument):
    """``kind: ProviderConfig``."""

    kind: Literal["ProviderConfig"]
    spec: ProviderConfigSpec
