"""ModelRouter: picks the candidate model for a role and falls back when one fails.

For each request the role's strategy orders the candidates (see
:mod:`astromesh.models.strategies`); the router then walks that order:

- a candidate whose circuit is open, or that is on hold after a 429, is skipped (see
  :mod:`astromesh.models.breaker`);
- a candidate with health checks configured is probed first when its circuit just went
  half-open or its evidence of health is stale, and skipped when unhealthy (see
  :mod:`astromesh.models.health`);
- a retryable failure (connection, timeout, 429, 5xx, a cut stream) is retried on the same
  candidate up to ``RetryPolicy.retries`` times with jittered exponential backoff, then the
  next candidate is tried (unless ``fallback_enabled`` is false);
- when the server said ``Retry-After`` (``ProviderError.retry_after``), the retry waits at
  least that long; a hint longer than ``RetryPolicy.max_delay``, or than the caller's
  remaining time (:func:`model_deadline`), means no retry of that candidate: the next one is
  tried at once instead of sleeping. The breaker is told either way, so other requests (and,
  with Redis, other instances) do not call it sooner: a 429 puts it on hold, another failure
  with a hint opens its circuit for at least that long;
- a non-retryable failure (a 4xx: the request itself is wrong) is raised at once;
- a stream that already sent tokens to the user is never restarted on another model: its
  error surfaces, because the user has seen half an answer;
- when nobody reads the tokens (``stream(tokens=False)``, :meth:`ModelRouter.complete`) each
  candidate is asked for its whole answer (:meth:`Model.complete`: one JSON response where
  the API has one) along the same path: the same order, retries, fallback, breaker, health
  evidence, pricing and spans.

When every candidate fails, :class:`ProviderUnavailable` says why for each; its
``retry_after`` is the soonest one is expected back, when that is known for all of them.

Each final response gets its ``cost`` from the price table, and each success feeds the
latency average that ``latency_optimized`` orders by.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from astromesh.errors import ConfigurationError, ProviderError, ProviderUnavailable
from astromesh.models.base import Model
from astromesh.models.breaker import ALLOWED, CircuitBreaker
from astromesh.models.catalog import PriceTable
from astromesh.models.health import HealthChecks
from astromesh.models.strategies import (
    RouteRequest,
    RouterStats,
    RoutingContext,
    candidate_key,
    missing_capabilities,
    strategy,
)
from astromesh.models.types import (
    GenerationParams,
    Message,
    ModelResponse,
    StreamEvent,
    TextDelta,
    ToolDefinition,
)
from astromesh.telemetry import genai

logger = logging.getLogger(__name__)

DEFAULT_ROLE = "default"
DEFAULT_STRATEGY = "quality_first"
"""A router built without strategies tries candidates in their declared order."""

RATE_LIMITED = 429

HINT_MARGIN = 0.02
"""Seconds added to a ``Retry-After`` wait, so the retry never lands a hair before the hint
(the breaker's hold or opening ends by another clock: Redis's)."""

_DEADLINE: ContextVar[float | None] = ContextVar("astromesh_model_deadline", default=None)


@contextmanager
def model_deadline(seconds: float) -> Iterator[None]:
    """Routers called inside may spend at most ``seconds`` more (a run's remaining time).

    A retry whose wait (backoff or ``Retry-After``) would end past it is not made: the next
    candidate is tried at once, or the request fails with the hint, instead of sleeping into
    the caller's timeout. Nested deadlines keep the earliest. A context variable, so the
    orchestration patterns need not pass it through every call.
    """
    deadline = time.monotonic() + seconds
    outer = _DEADLINE.get()
    token = _DEADLINE.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries of one candidate before falling back to the next.

    Attributes:
        retries: extra attempts on the same candidate after a retryable failure (0 = fall
            back at once).
        base_delay: seconds; the n-th retry waits a random time in
            ``[0, min(max_delay, base_delay * 2**(n-1))]`` ("full jitter", so many Lambdas
            retrying together do not hit the backend in lockstep).
        max_delay: cap of one wait, in seconds.
        max_attempts: cap of attempts over all candidates of one request (``None``: no cap
            beyond ``retries`` per candidate).
    """

    retries: int = 0
    base_delay: float = 0.1
    max_delay: float = 2.0
    max_attempts: int | None = None

    def delay(self, retry: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (retry - 1)))


class ModelRouter:
    """Candidate lists per role (``default``, ``planner``, ``worker``...), routed per request.

    Args:
        candidates: the declared candidates of each role; ``default`` is required and serves
            roles without their own list.
        strategies: strategy name per role (roles not listed use ``default_strategy``).
        default_strategy: see :mod:`astromesh.models.strategies`.
        fallback_enabled: when false only the first candidate of the strategy's order is
            tried (with its retries).
        breaker: circuit breaker store shared by every router of the process (or of every
            process, with Redis); ``None`` disables circuit breaking.
        prices: the price table that sets each response's ``cost``.
        retry: retry and backoff of one candidate.
        stats: observed latencies and rotation counters; pass one to share it between routers.
        health_checks: health evidence and probes (see :mod:`astromesh.models.health`), shared by
            every router of a runtime; one per router when omitted. Only candidates whose
            settings give a ``health_check_interval`` are ever probed.
    """

    def __init__(
        self,
        candidates: Mapping[str, Sequence[Model]],
        *,
        strategies: Mapping[str, str] | None = None,
        default_strategy: str = DEFAULT_STRATEGY,
        fallback_enabled: bool = True,
        breaker: CircuitBreaker | None = None,
        prices: PriceTable | None = None,
        retry: RetryPolicy | None = None,
        stats: RouterStats | None = None,
        health_checks: HealthChecks | None = None,
    ) -> None:
        if not candidates.get(DEFAULT_ROLE):
            raise ConfigurationError("a model router needs at least one default candidate")
        self._candidates = {role: list(models) for role, models in candidates.items()}
        self._strategies = {role: strategy(name) for role, name in (strategies or {}).items()}
        self._strategy_names = dict(strategies or {})
        self.default_strategy = default_strategy
        self._default = strategy(default_strategy)
        self.fallback_enabled = fallback_enabled
        self.breaker = breaker
        self.prices = prices or PriceTable()
        self.retry = retry or RetryPolicy()
        self.stats = stats or RouterStats()
        self.health_checks = health_checks or HealthChecks()
        # Registered with the background loop on first use (stream), not here: a router is
        # also built to check a document posted to the API, and the loop would then probe
        # endpoints of a document that was never accepted.
        self._watched = False

    # -- what other layers read --------------------------------------------------------------

    def candidates(self, role: str = DEFAULT_ROLE) -> list[Model]:
        """The role's candidates in declared order (the default's for an unknown role)."""
        return self._candidates.get(role) or self._candidates[DEFAULT_ROLE]

    def primary(self, role: str = DEFAULT_ROLE) -> Model:
        """The role's first declared candidate."""
        return self.candidates(role)[0]

    def models(self) -> list[Model]:
        """Every distinct model instance, for health checks and closing."""
        seen: dict[int, Model] = {}
        for models in self._candidates.values():
            for model in models:
                seen.setdefault(id(model), model)
        return list(seen.values())

    def strategy_name(self, role: str = DEFAULT_ROLE) -> str:
        return self._strategy_names.get(role, self.default_strategy)

    def plan(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        role: str = DEFAULT_ROLE,
        params: GenerationParams | None = None,
        requires: Collection[str] = (),
    ) -> list[Model]:
        """The order in which a request would try the candidates (circuits not consulted).

        Models that cannot chat at all (an embedding-only ONNX model) are never planned.

        Raises:
            ProviderUnavailable: no candidate can serve this request (``capability_match``
                found none with the needed capabilities, or none can chat).
        """
        request = RouteRequest(role, messages, tools, params, frozenset(requires))
        return self._plan(request)

    def _plan(self, request: RouteRequest) -> list[Model]:
        declared = self.candidates(request.role)
        chat = [m for m in declared if m.capabilities.chat]
        order_by = self._strategies.get(request.role, self._default)
        ordered = order_by(chat, request, RoutingContext(self.prices, self.stats))
        if not ordered:
            raise self._no_candidate(declared, request)
        return ordered

    def _no_candidate(self, declared: list[Model], request: RouteRequest) -> ProviderUnavailable:
        reasons = []
        for model in declared:
            lacking = ["chat"] if not model.capabilities.chat else []
            lacking += missing_capabilities(model, request)
            reasons.append(f"{candidate_key(model)} lacks {', '.join(lacking)}")
        needed = ", ".join(sorted(request.needed)) or "chat"
        last = declared[-1]
        return ProviderUnavailable(
            f"no candidate for role {request.role!r} can serve a request needing {needed}: "
            + "; ".join(reasons),
            provider=last.settings.label,
            model=last.model,
            retryable=False,
        )

    # -- calls ---------------------------------------------------------------------------------

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        role: str = DEFAULT_ROLE,
        params: GenerationParams | None = None,
        requires: Collection[str] = (),
        tokens: bool = True,
    ) -> AsyncIterator[StreamEvent]:
        """Stream from the first candidate that answers; the final response carries its cost.

        Args:
            requires: capabilities the request needs beyond what it shows (``vision`` for a
                message with images); tools and JSON mode are detected from the request.
            tokens: false when nobody reads the text as it is generated: each candidate is
                asked for its whole answer (:meth:`Model.complete`, one JSON response where
                the API has one) and only the final response is yielded. Selection,
                fallback, retries, breaker, pricing and spans are the same.

        Raises:
            ProviderError: a non-retryable failure, or a failure after tokens were sent.
            ProviderUnavailable: every candidate failed with a retryable error or had its
                circuit open, or none can serve the request.
        """
        if not self._watched:
            self._watched = True
            self.health_checks.register(self.models(), self.breaker)
        request = RouteRequest(role, messages, tools, params, frozenset(requires))
        ordered = self._plan(request)
        if not self.fallback_enabled:
            ordered = ordered[:1]
        failures: list[str] = []
        back_in: list[float | None] = []  # per candidate given up on: seconds until it may
        # answer again (its open circuit, hold or Retry-After), None when unknown
        attempts = 0
        for model in ordered:
            key = candidate_key(model)
            retry = 0
            while True:
                if self.retry.max_attempts is not None and attempts >= self.retry.max_attempts:
                    back_in.append(None)
                    break
                admission = ALLOWED if self.breaker is None else await self.breaker.admit(key)
                if not admission:
                    failures.append(f"{key}: {admission.reason} ({admission.wait:.1f}s left)")
                    back_in.append(admission.wait)
                    break
                if (
                    model.settings.health_check_interval is not None
                    and self.health_checks.due(model, key, trial=admission.trial)
                    and not await self.health_checks.probe(model, key)
                ):
                    if self.breaker is not None:
                        await self.breaker.record_failure(key)
                    failures.append(f"{key}: health check failed")
                    back_in.append(None)
                    break
                attempts += 1
                spoke = False
                started = time.perf_counter()
                try:
                    with genai.chat(model.settings.provider_type, model.model, messages) as span:
                        if not tokens:
                            event = await model.complete(messages, tools=tools, params=params)
                            await self._succeeded(model, key, event, started)
                            span.answered(event)
                            yield event
                            return
                        async for event in model.stream(messages, tools=tools, params=params):
                            if isinstance(event, ModelResponse):
                                await self._succeeded(model, key, event, started)
                                span.answered(event)
                            else:
                                spoke = spoke or isinstance(event, TextDelta)
                            yield event
                    return
                except ProviderError as exc:
                    if not exc.retryable:
                        # The backend answered; the request is at fault, not its health.
                        self._answered(model, key)
                        if self.breaker is not None:
                            await self.breaker.record_success(key)
                        raise
                    await self._failed(model, key, exc)
                    if spoke:
                        raise
                    failures.append(exc.message)
                    wait = self._retry_wait(retry + 1, exc.retry_after)
                    if wait is None:
                        logger.warning(
                            "provider=<%s> model=<%s> | falling back: %s",
                            exc.provider,
                            exc.model,
                            exc.message,
                        )
                        back_in.append(exc.retry_after)
                        break
                    retry += 1
                    logger.info(
                        "provider=<%s> | retry %d in %.2fs: %s", key, retry, wait, exc.message
                    )
                    await asyncio.sleep(wait)
        last = ordered[-1]
        known = [w for w in back_in if w is not None]
        raise ProviderUnavailable(
            "every candidate failed: " + " | ".join(failures),
            provider=last.settings.label,
            model=last.model,
            retryable=True,
            retry_after=min(known) if known and len(known) == len(ordered) else None,
        )

    def _retry_wait(self, retry: int, hint: float | None) -> float | None:
        """Seconds to wait before retry number ``retry`` of a candidate, or ``None`` to fall
        back at once: no retries left, a ``Retry-After`` beyond ``max_delay``, or a wait that
        would outlast the caller's deadline."""
        if retry > self.retry.retries:
            return None
        wait = self.retry.delay(retry)
        if hint is not None:
            if hint > self.retry.max_delay:
                return None
            wait = max(wait, hint + HINT_MARGIN)
        deadline = _DEADLINE.get()
        if deadline is not None and time.monotonic() + wait >= deadline:
            return None
        return wait

    def _answered(self, model: Model, key: str) -> None:
        """The backend answered (however): fresh evidence that it is up."""
        if model.settings.health_check_interval is not None:
            self.health_checks.observed_up(key)

    async def _failed(self, model: Model, key: str, exc: ProviderError) -> None:
        """Tell the breaker and the health evidence what a retryable failure says.

        A 429 is a live backend refusing *us* (rate limiting is not ill health): it is not a
        failure, and its hint puts the candidate on hold. Anything else is a failure; with a
        hint it opens the circuit for at least that long. A failure without any HTTP status
        (refused, timed out, cut off) drops the evidence of health, so the next request probes
        the backend quickly instead of waiting out a whole request timeout.
        """
        if exc.status_code == RATE_LIMITED:
            self._answered(model, key)
            if self.breaker is not None:
                await self.breaker.record_rate_limited(key, retry_after=exc.retry_after)
            return
        if exc.status_code is None:
            self.health_checks.forget(key)
        if self.breaker is not None:
            await self.breaker.record_failure(key, retry_after=exc.retry_after)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        role: str = DEFAULT_ROLE,
        params: GenerationParams | None = None,
        requires: Collection[str] = (),
    ) -> ModelResponse:
        """The final response of :meth:`stream`, asked for without streaming (``tokens``
        false): nobody sees the text before it is whole."""
        final: ModelResponse | None = None
        async for event in self.stream(
            messages, tools=tools, role=role, params=params, requires=requires, tokens=False
        ):
            if isinstance(event, ModelResponse):
                final = event
        assert final is not None, "router streams always end with a ModelResponse"
        return final

    async def _succeeded(
        self, model: Model, key: str, response: ModelResponse, started: float
    ) -> None:
        if model.settings.health_check_interval is not None:
            self.health_checks.observed_up(key)
        if self.breaker is not None:
            await self.breaker.record_success(key)
        latency = response.latency_ms or (time.perf_counter() - started) * 1000.0
        self.stats.observe_latency(candidate_key(model), latency)
        response.cost = self.cost_of(model, response)

    def cost_of(self, model: Model, response: ModelResponse) -> float:
        """Cost of one response of ``model`` from the price table."""
        price = self.prices.price(model.settings.provider_type, response.provider, response.model)
        if price is None:
            logger.debug("provider=<%s> | no price for %s; cost 0", response.provider, model.model)
            return 0.0
        return price.cost(response.usage.tokens_in, response.usage.tokens_out)

    async def health(self) -> dict[str, bool]:
        """Whether each distinct candidate's backend answers its health endpoint."""
        models = self.models()
        results = await asyncio.gather(*(m.health() for m in models))
        return {candidate_key(m): ok for m, ok in zip(models, results, strict=True)}

    async def aclose(self) -> None:
        for model in self.models():
            await model.aclose()


__all__ = ["DEFAULT_ROLE", "DEFAULT_STRATEGY", "ModelRouter", "RetryPolicy", "model_deadline"]
