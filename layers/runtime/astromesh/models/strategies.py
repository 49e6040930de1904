"""Routing strategies: the order in which a role's candidates are tried for one request.

A strategy only *orders* (and, for ``capability_match``, filters) the candidates; the router
then walks that order with retries, fallback and the circuit breaker. Every strategy keeps the
declared order among equals, so a config's order is always the tie-breaker.

- ``quality_first``: the declared order (list your best model first: the order *is* the
  quality rank).
- ``cost_optimized``: cheapest estimated cost of this request first (prompt estimate plus
  ``max_tokens``); candidates whose price is unknown go after those with a known price.
- ``latency_optimized``: lowest observed latency first (an exponentially weighted moving
  average per candidate, in this process); candidates never observed go first, so each gets
  measured.
- ``round_robin``: the starting candidate rotates on each request; the others follow in
  declared order as fallbacks.
- ``capability_match``: only candidates declaring every capability the request needs
  (tools, vision, JSON mode, a context window long enough), in declared order.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from astromesh.models.base import Model
from astromesh.models.catalog import PriceTable
from astromesh.models.estimate import estimate_tokens, prompt_texts
from astromesh.models.types import GenerationParams, Message, ToolDefinition

DEFAULT_OUTPUT_ESTIMATE = 512
"""Answer tokens assumed for cost ordering when the request sets no ``max_tokens``."""

EWMA_ALPHA = 0.3
"""Weight of the newest latency sample: recent enough to follow a degrading backend, smooth
enough that one slow answer does not reorder everything."""


@dataclass(frozen=True)
class RouteRequest:
    """What a strategy may look at: the request and what it needs."""

    role: str
    messages: Sequence[Message]
    tools: Sequence[ToolDefinition] = ()
    params: GenerationParams | None = None
    requires: frozenset[str] = frozenset()

    @property
    def tokens_in(self) -> int:
        return estimate_tokens(*prompt_texts(self.messages, self.tools))

    @property
    def tokens_out(self) -> int:
        max_tokens = self.params.max_tokens if self.params is not None else None
        return max_tokens or DEFAULT_OUTPUT_ESTIMATE

    @property
    def needed(self) -> frozenset[str]:
        """The capabilities this request needs: declared ones, plus tools / JSON mode when the
        request itself asks for them."""
        needed = set(self.requires)
        if self.tools:
            needed.add("tools")
        if _wants_json(self.params):
            needed.add("json_mode")
        return frozenset(needed)


def _wants_json(params: GenerationParams | None) -> bool:
    """``response_format`` (OpenAI-style) or ``format`` (Ollama-style) asking for JSON."""
    extra = (params.model_extra if params is not None else None) or {}
    response_format = extra.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        return True
    fmt = extra.get("format")
    return fmt == "json" or isinstance(fmt, dict)


def candidate_key(model: Model) -> str:
    """How a candidate is named in stats, circuit breakers and logs: ``provider/model``.

    A candidate written inline (no ProviderConfig name) is labelled by its type only, so its
    endpoint is added: two unrelated ``openai_compat`` servers must not share one circuit.
    """
    key: str | None = model.__dict__.get("_candidate_key")
    if key is None:
        settings = model.settings
        key = f"{settings.label}/{model.model}"
        if settings.name is None and settings.endpoint:
            key += f"@{settings.endpoint}"
        model.__dict__["_candidate_key"] = key  # settings are frozen: compute once
    return key


@dataclass
class RouterStats:
    """What the router has observed in this process: latency EWMAs and rotation counters."""

    alpha: float = EWMA_ALPHA
    latency_ms: dict[str, float] = field(default_factory=dict)
    _counters: dict[str, itertools.count[int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe_latency(self, key: str, ms: float) -> None:
        with self._lock:
            previous = self.latency_ms.get(key)
            self.latency_ms[key] = (
                ms if previous is None else self.alpha * ms + (1 - self.alpha) * previous
            )

    def next_turn(self, role: str) -> int:
        with self._lock:
            return next(self._counters.setdefault(role, itertools.count()))


@dataclass
class RoutingContext:
    """Everything a strategy may consult besides the request."""

    prices: PriceTable
    stats: RouterStats


Strategy = Callable[[list[Model], RouteRequest, RoutingContext], list[Model]]


def quality_first(models: list[Model], request: RouteRequest, ctx: RoutingContext) -> list[Model]:
    return list(models)


def cost_optimized(models: list[Model], request: RouteRequest, ctx: RoutingContext) -> list[Model]:
    tokens = (request.tokens_in, request.tokens_out)

    def cost(model: Model) -> float:
        price = ctx.prices.price(model.settings.provider_type, model.settings.label, model.model)
        return math.inf if price is None else price.cost(*tokens)

    return sorted(models, key=cost)  # sorted() is stable: declared order among equals


def latency_optimized(
    models: list[Model], request: RouteRequest, ctx: RoutingContext
) -> list[Model]:
    observed = ctx.stats.latency_ms
    return sorted(models, key=lambda m: observed.get(candidate_key(m), -1.0))


def round_robin(models: list[Model], request: RouteRequest, ctx: RoutingContext) -> list[Model]:
    if not models:
        return []
    start = ctx.stats.next_turn(request.role) % len(models)
    return [*models[start:], *models[:start]]


def capability_match(
    models: list[Model], request: RouteRequest, ctx: RoutingContext
) -> list[Model]:
    return [m for m in models if not missing_capabilities(m, request)]


def missing_capabilities(model: Model, request: RouteRequest) -> list[str]:
    """What ``model`` lacks for ``request`` (tokens checked against its context window)."""
    return model.capabilities.missing(request.needed, request.tokens_in + request.tokens_out)


STRATEGIES: dict[str, Strategy] = {
    "quality_first": quality_first,
    "cost_optimized": cost_optimized,
    "latency_optimized": latency_optimized,
    "round_robin": round_robin,
    "capability_match": capability_match,
}


def strategy(name: str) -> Strategy:
    """The strategy called ``name``."""
    from astromesh.errors import ConfigurationError

    try:
        return STRATEGIES[name]
    except KeyError:
        known = ", ".join(STRATEGIES)
        raise ConfigurationError(f"unknown routing strategy {name!r}; known: {known}") from None


__all__ = [
    "STRATEGIES",
    "RouteRequest",
    "RouterStats",
    "RoutingContext",
    "Strategy",
    "candidate_key",
    "missing_capabilities",
    "strategy",
]
