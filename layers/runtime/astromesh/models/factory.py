"""Build an agent's ModelRouter from its ``spec.model`` and the ProviderConfig documents.

This is the runtime's one entry point into this package: it resolves each candidate against
the named provider entries (type, endpoint, key, timeout, pricing), picks each role's strategy
and wires the shared circuit breaker. Both spellings of ``spec.model`` (primary + fallback, or
``default``/``roles``) go through ``ModelSpec.candidates(role)``, so they build the same router.

Health checks (see :mod:`astromesh.models.health`): a candidate's ``health_check_interval`` is
the agent's ``spec.model.routing.health_check_interval`` when set, else its ProviderConfig
entry's (30 s by default); a candidate written inline, outside any entry, has none unless the
agent sets one. 0 turns them off.

Strategy of a role, first found wins:

1. the agent's own (``spec.model.routing.strategy`` or ``roles.<role>.strategy``);
2. ``ProviderConfig`` ``routing.default_strategy``, when a document sets it;
3. the declared order (``quality_first``): a file that names a ``primary`` and no strategy
   means that model first, never a cheaper fallback ahead of it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from astromesh.models.base import Model, ProviderSettings
from astromesh.models.breaker import CircuitBreaker, build_breaker
from astromesh.models.catalog import Price, PriceTable
from astromesh.models.health import HealthChecks
from astromesh.models.registry import create_model
from astromesh.models.router import DEFAULT_ROLE, DEFAULT_STRATEGY, ModelRouter, RetryPolicy
from astromesh.models.strategies import RouterStats
from astromesh.models.types import GenerationParams
from astromesh.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from astromesh.config import AgentDocument, ModelCandidate
    from astromesh.config.provider import ProviderEntry, RoutingConfig
    from astromesh.tools.ssrf import SSRFGuard

logger = logging.getLogger(__name__)

DEFAULT_PROVIDER_TIMEOUT = 60.0
DEFAULT_RETRY = RetryPolicy(retries=1, base_delay=0.1, max_delay=2.0)
"""One jittered retry of a candidate before its fallback: a 429 or a dropped connection often
passes within a fraction of a second."""


def build_router(
    doc: AgentDocument,
    providers: Mapping[str, ProviderEntry],
    routing: RoutingConfig | None,
    env: Mapping[str, str],
    breaker: CircuitBreaker | None = None,
    *,
    retry: RetryPolicy | None = None,
    stats: RouterStats | None = None,
    health_checks: HealthChecks | None = None,
    guard: SSRFGuard | None = None,
) -> ModelRouter:
    """The router of one agent.

    Args:
        doc: the agent document.
        providers: ProviderConfig entries by name (``LoadResult.providers``).
        routing: ProviderConfig ``routing`` (``LoadResult.routing``), or ``None``.
        env: where ``api_key_env`` names are looked up.
        breaker: the process's circuit breaker (see :func:`breaker_for`); build it once per
            runtime so every agent calling the same backend sees the same circuit.
        retry: retry policy; :data:`DEFAULT_RETRY` when omitted.
        stats: latency/rotation stats to share between routers (one per router otherwise).
        health_checks: the runtime's health evidence, shared like ``breaker``.
        guard: the SSRF guard every candidate that no ProviderConfig defines connects
            through (a registered agent's :meth:`Grants.model_guard`); ``None``: unguarded.
            Candidates of ProviderConfig providers keep the operator's endpoint unguarded.
    """
    spec = doc.spec.model
    interval = spec.routing.health_check_interval if spec.routing is not None else None
    roles = {DEFAULT_ROLE, *spec.roles()}
    built: dict[tuple[Any, ...], Model] = {}

    def model_for(candidate: ModelCandidate) -> Model:
        # One instance per distinct candidate, so a model listed under several roles shares
        # its HTTP connection pool.
        key = (candidate.provider, candidate.model, candidate.endpoint, repr(candidate))
        if key not in built:
            built[key] = build_model(
                candidate,
                providers,
                env,
                health_check_interval=interval,
                guard=None if candidate.provider in providers else guard,
            )
        return built[key]

    return ModelRouter(
        {role: [model_for(c) for c in spec.candidates(role)] for role in roles},
        strategies={role: role_strategy(doc, routing, role) for role in roles},
        fallback_enabled=routing.fallback_enabled if routing is not None else True,
        breaker=breaker,
        prices=price_table(providers),
        retry=retry or DEFAULT_RETRY,
        stats=stats,
        health_checks=health_checks,
    )


def breaker_for(
    routing: RoutingConfig | None, redis_url: str | None, *, metrics: Metrics | None = None
) -> CircuitBreaker:
    """The circuit breaker configured by ``routing.circuit_breaker``: in Redis when a URL is
    given (shared by every Lambda instance), in memory otherwise; ``metrics`` counts opens."""
    if routing is not None:
        cb = routing.circuit_breaker
        return build_breaker(
            redis_url,
            failure_threshold=cb.failure_threshold,
            recovery_timeout=cb.recovery_timeout,
            first_trial_after=cb.first_trial_after,
            metrics=metrics,
        )
    return build_breaker(redis_url, metrics=metrics)


def role_strategy(doc: AgentDocument, routing: RoutingConfig | None, role: str) -> str:
    """The strategy of ``role``; see the module docstring for the order of precedence."""
    spec = doc.spec.model
    if spec.uses_roles:
        role_models = spec.role_models.get(role) or spec.default
        if role_models is not None and "strategy" in role_models.model_fields_set:
            return role_models.strategy
    elif spec.routing is not None and "strategy" in spec.routing.model_fields_set:
        return spec.routing.strategy
    if routing is not None and "default_strategy" in routing.model_fields_set:
        return routing.default_strategy
    return DEFAULT_STRATEGY


def build_model(
    candidate: ModelCandidate,
    providers: Mapping[str, ProviderEntry],
    env: Mapping[str, str],
    *,
    health_check_interval: int | None = None,
    guard: SSRFGuard | None = None,
) -> Model:
    """One provider instance for ``candidate``, resolved against the named provider entry.

    ``health_check_interval`` is the agent's, which wins over the entry's (module docstring).
    """
    entry = providers.get(candidate.provider)
    if health_check_interval is None and entry is not None:
        health_check_interval = entry.health_check_interval
    provider_type = entry.type if entry is not None else candidate.provider
    api_key_env = candidate.api_key_env or (entry.api_key_env if entry else None)
    api_key = env.get(api_key_env) if api_key_env else None
    if api_key_env and not api_key:
        logger.warning(
            "provider=<%s> | %s is not set; calling without a key", candidate.provider, api_key_env
        )
    options: dict[str, Any] = {}
    capabilities = _configured_capabilities(entry, candidate.model)
    if capabilities is not None:
        options["capabilities"] = capabilities
    return create_model(
        ProviderSettings(
            provider_type=provider_type,
            model=candidate.model,
            endpoint=candidate.endpoint or (entry.endpoint if entry else None),
            api_key=api_key,
            params=GenerationParams(**candidate.parameters.model_dump(exclude_none=True)),
            timeout_seconds=candidate.timeout_seconds
            or (entry.timeout_seconds if entry is not None else None)
            or DEFAULT_PROVIDER_TIMEOUT,
            name=candidate.provider if entry is not None else None,
            options=options,
            health_check_interval=health_check_interval or None,  # 0: off
            guard=guard,
        )
    )


def _configured_capabilities(entry: ProviderEntry | None, model: str) -> dict[str, Any] | None:
    """What a ProviderConfig entry declares for ``model`` (``capabilities.<model>``): only
    the fields it sets, applied over the router's defaults."""
    declared = entry.capabilities.get(model) if entry is not None else None
    if declared is None:
        return None
    return declared.model_dump(exclude_none=True)


def price_table(providers: Mapping[str, ProviderEntry]) -> PriceTable:
    """Default prices overridden by every entry's ``pricing``, keyed by (entry name, model)."""
    overrides = {
        (name, model): Price(p.input_per_million, p.output_per_million)
        for name, entry in providers.items()
        for model, p in (entry.pricing or {}).items()
    }
    return PriceTable(overrides=overrides)


__all__ = ["DEFAULT_RETRY", "breaker_for", "build_model", "build_router", "price_table"]
