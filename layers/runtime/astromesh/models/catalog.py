"""What the router knows about models before calling them: prices and capabilities.

Two tables keyed by model name, used when nothing more specific is configured:

- :data:`DEFAULT_PRICES`: US dollars per million input/output tokens of a few well-known hosted
  models. **Prices change**; these are list prices noted in 2025 and are only a default. A
  ``ProviderConfig`` entry's ``pricing`` overrides them, and self-hosted providers (Ollama,
  llama.cpp, vLLM, TGI, ONNX) cost nothing per token.
- :data:`KNOWN_CAPABILITIES`: tools, vision, JSON mode and context window of the same models.

A name matches its exact entry first, then the longest entry it starts with, so dated
snapshots (``gpt-4o-mini-2024-07-18``) and Ollama tags (``llama3.1:8b``) find their family.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from astromesh.errors import ConfigurationError

LOCAL_PROVIDER_TYPES: frozenset[str] = frozenset({"ollama", "llamacpp", "vllm", "hf_tgi", "onnx"})
"""Self-hosted backends: no per-token price (the hardware is paid for either way)."""


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """Cost of one call with these token counts."""
        return (
            tokens_in * self.input_per_million + tokens_out * self.output_per_million
        ) / 1_000_000


FREE = Price()

# Prices change: these are list prices per 1M tokens noted in 2025, a default only. Override
# them per provider in a ProviderConfig (`pricing: {model: {input_per_million, ...}}`).
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "o3-mini": Price(1.10, 4.40),
    "claude-3-5-sonnet": Price(3.00, 15.00),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "claude-3-haiku": Price(0.25, 1.25),
    "mistral-large": Price(2.00, 6.00),
    "mistral-small": Price(0.20, 0.60),
}

CAPABILITY_NAMES: tuple[str, ...] = ("chat", "tools", "vision", "json_mode")
"""The boolean capabilities a request can require; ``long_context`` is checked against
:attr:`Capabilities.context_window` instead."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one model can do, as far as routing is concerned.

    Attributes:
        chat: generates chat completions (false for embedding/classification-only models).
        tools: accepts tool definitions and returns structured tool calls.
        vision: accepts images.
        json_mode: can be constrained to answer valid JSON.
        context_window: prompt plus answer tokens the model accepts.
    """

    chat: bool = True
    tools: bool = False
    vision: bool = False
    json_mode: bool = False
    context_window: int = 4096

    def missing(self, required: Collection[str], tokens_needed: int = 0) -> list[str]:
        """The requirements this model does not meet (empty when it qualifies)."""
        known = [name for name in CAPABILITY_NAMES if name in required]
        unknown = sorted(set(required) - {*CAPABILITY_NAMES, "long_context"})
        lacking = [name for name in known if not getattr(self, name)] + unknown
        if tokens_needed > self.context_window:
            lacking.append(f"long_context ({tokens_needed} > {self.context_window} tokens)")
        return lacking

    def updated(self, values: Mapping[str, Any]) -> Capabilities:
        """A copy with ``values`` applied: booleans by name, ``context_window`` as an int, or a
        list of names meaning "exactly these booleans are true"."""
        if isinstance(values, list | tuple | set | frozenset):
            names = set(values)
            _check_names(names - {"long_context"})
            return replace(self, **{name: name in names for name in CAPABILITY_NAMES})
        unknown = set(values) - {*CAPABILITY_NAMES, "context_window"}
        _check_names(unknown)
        return replace(self, **dict(values))


def _check_names(names: Iterable[str]) -> None:
    unknown = sorted(set(names) - set(CAPABILITY_NAMES))
    if unknown:
        raise ConfigurationError(
            f"unknown model capabilities {unknown}; known: {', '.join(CAPABILITY_NAMES)},"
            " context_window"
        )


_ALL = {"tools": True, "json_mode": True}
KNOWN_CAPABILITIES: dict[str, dict[str, Any]] = {
    "gpt-4o": {**_ALL, "vision": True, "context_window": 128_000},
    "gpt-4o-mini": {**_ALL, "vision": True, "context_window": 128_000},
    "gpt-4.1": {**_ALL, "vision": True, "context_window": 1_000_000},
    "gpt-4.1-mini": {**_ALL, "vision": True, "context_window": 1_000_000},
    "gpt-4.1-nano": {**_ALL, "vision": True, "context_window": 1_000_000},
    "gpt-3.5-turbo": {**_ALL, "context_window": 16_385},
    "o3-mini": {**_ALL, "context_window": 200_000},
    "claude-3-5-sonnet": {**_ALL, "vision": True, "context_window": 200_000},
    "claude-3-5-haiku": {**_ALL, "context_window": 200_000},
    "claude-3-haiku": {**_ALL, "vision": True, "context_window": 200_000},
    "mistral-large": {**_ALL, "context_window": 128_000},
    "mistral-small": {**_ALL, "context_window": 32_000},
    "llama3.1": {**_ALL, "context_window": 128_000},
    "llama3.2": {**_ALL, "context_window": 128_000},
    "llama3.2-vision": {**_ALL, "vision": True, "context_window": 128_000},
    "llava": {"vision": True, "json_mode": True, "context_window": 4096},
    "qwen2.5": {**_ALL, "context_window": 32_768},
    "mistral": {**_ALL, "context_window": 32_768},
    "smollm2-135m-instruct": {"context_window": 2048},
}


def lookup(table: Mapping[str, Any], model: str) -> Any | None:
    """The entry for ``model``: exact (case-insensitive), else the longest matching prefix."""
    name = model.lower().rsplit("/", 1)[-1]
    if name in table:
        return table[name]
    best = max((key for key in table if name.startswith(key)), key=len, default=None)
    return table[best] if best is not None else None


PRICE_LOOKUPS_KEPT = 256
"""Model names whose default price a :class:`PriceTable` remembers (then it starts over)."""


@dataclass
class PriceTable:
    """Prices by (provider name, model): configured overrides, then the defaults.

    Args:
        overrides: ``(provider label, model) -> Price``, from ProviderConfig ``pricing``.
        defaults: price per model name for hosted providers (:data:`DEFAULT_PRICES`).
    """

    overrides: dict[tuple[str, str], Price] = field(default_factory=dict)
    defaults: Mapping[str, Price] = field(default_factory=lambda: DEFAULT_PRICES)
    _found: dict[str, Price | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """:func:`lookup` of ``defaults`` by model name, remembered: a dated or unknown name
    scans every key for a prefix, at every model call (at most :data:`PRICE_LOOKUPS_KEPT`
    names: they come from agent documents and model responses)."""

    def price(self, provider_type: str, provider: str, model: str) -> Price | None:
        """The price of one model, or ``None`` when it is unknown (a hosted model not listed).

        Self-hosted provider types cost nothing unless a price is configured for them.
        """
        configured = self.overrides.get((provider, model))
        if configured is not None:
            return configured
        if provider_type in LOCAL_PROVIDER_TYPES:
            return FREE
        try:
            return self._found[model]
        except KeyError:
            pass
        found: Price | None = lookup(self.defaults, model)
        if len(self._found) >= PRICE_LOOKUPS_KEPT:
            self._found.clear()
        self._found[model] = found
        return found

    def cost(self, provider_type: str, provider: str, model: str, tokens: tuple[int, int]) -> float:
        """Cost of a call; an unknown price counts as zero (and is logged by the caller)."""
        price = self.price(provider_type, provider, model)
        return price.cost(*tokens) if price is not None else 0.0


__all__ = [
    "CAPABILITY_NAMES",
    "DEFAULT_PRICES",
    "FREE",
    "KNOWN_CAPABILITIES",
    "LOCAL_PROVIDER_TYPES",
    "Capabilities",
    "Price",
    "PriceTable",
    "lookup",
]
