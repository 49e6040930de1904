"""Circuit breakers per (provider, model): stop calling a backend that keeps failing.

closed --(``failure_threshold`` consecutive failures)--> open --(``first_trial_after``)-->
half-open: exactly one trial call goes through; its success closes the circuit, its failure
opens it again for twice as long as the last time, up to ``recovery_timeout`` (2 s, 4 s, 8 s...
60 s by default). A backend that comes back is used again within seconds, while one that stays
down is probed less and less often, by one caller at a time on every instance. Callers that
find the circuit open (or a trial already running) skip the candidate instead of waiting on it.

The server's own word, ``Retry-After`` (``ProviderError.retry_after``), is taken into account:

- a failure carrying a hint (a 503 "unavailable, come back in N s"; any retryable failure but
  a 429) opens the circuit at once, below the threshold, for the hint; when the failure also
  reaches the threshold (or fails a trial), for the backoff's duration or the hint if longer. A
  hint received while the circuit is open extends it, never shortens it. After it, the usual
  single trial: a backend coming back from overload is not hit by every instance at once.
- a 429 is *not* ill health: the backend answered, and says *we* are over a quota (usually per
  API key, so shared by every instance). :meth:`CircuitBreaker.record_rate_limited` neither
  counts a failure nor resets the count of those before it; a half-open trial answered 429
  closes the circuit (the backend is up). Its hint puts the candidate *on hold* until then:
  :meth:`CircuitBreaker.admit` refuses it on every instance, and when the hold ends calls
  resume without a trial, since the quota window reopens for everyone at once.

Hints are clamped to ``MAX_RETRY_AFTER`` (one hour) where they are parsed
(:func:`astromesh.models._http.retry_after_seconds`).

Two stores behave identically (the same tests run against both):

- :class:`MemoryCircuitBreaker`: one process (the CLI, the local server, tests).
- :class:`~astromesh.models.breaker_redis.RedisCircuitBreaker`: every Lambda instance sees the
  same circuit. Each transition is one Lua script, so two instances can never both claim the
  half-open trial, and the clock is Redis's ``TIME`` so instances with skewed clocks agree on
  when the circuit may close; a short per-process cache of the circuit's state spares a
  healthy model call its round trips (that module says what it trades).

A breaker that cannot reach Redis lets calls through (fails open) and logs a warning: losing
the breaker must not take the models down with it.

Every transition to open is logged and counted (``CircuitOpened``, see
:mod:`astromesh.telemetry.metrics`) by the instance whose failure caused it, so an alarm fires
once per opening however many instances share the circuit.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from astromesh.telemetry.metrics import Metrics, NullMetrics

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "astromesh:breaker"


class BreakerState(StrEnum):
    """Where a circuit is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Verdict(IntEnum):
    """What :meth:`CircuitBreaker.admit` decided; false only when refused."""

    REFUSED = 0
    ALLOWED = 1
    TRIAL = 2
    """Allowed as the half-open trial: the router probes the backend's health first."""


class Refusal(StrEnum):
    """Why a call was refused, as the router reports it."""

    OPEN = "circuit open"
    TRIAL_RUNNING = "circuit half-open, trial running"
    HELD = "rate-limited (Retry-After)"


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer of :meth:`CircuitBreaker.admit`; truthy when the call may go ahead.

    Attributes:
        verdict: allowed, allowed as the trial, or refused.
        reason: why it was refused (``None`` when allowed).
        wait: seconds until the refusal lapses (the open circuit's trial is due, the hold or
            the running trial's lease ends); 0 when allowed.
    """

    verdict: Verdict
    reason: Refusal | None = None
    wait: float = 0.0

    def __bool__(self) -> bool:
        return self.verdict is not Verdict.REFUSED

    @property
    def trial(self) -> bool:
        return self.verdict is Verdict.TRIAL


ALLOWED = Admission(Verdict.ALLOWED)
TRIAL = Admission(Verdict.TRIAL)


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """How quickly a circuit opens and when it may close.

    Attributes:
        failure_threshold: consecutive retryable failures that open the circuit.
        recovery_timeout: the longest an open circuit waits before allowing one trial call.
        trial_timeout: seconds the half-open trial is reserved for its caller; when that
            caller never reports (a Lambda frozen mid-call, a cancelled stream) another caller
            may try after this. Defaults to ``recovery_timeout``.
        first_trial_after: seconds a circuit that just opened waits before its first trial;
            each failed trial doubles the wait, up to ``recovery_timeout``. Set it to
            ``recovery_timeout`` for a fixed wait.
    """

    failure_threshold: int = 3
    recovery_timeout: float = 60.0
    trial_timeout: float | None = None
    first_trial_after: float = 2.0

    @property
    def trial_seconds(self) -> float:
        return self.trial_timeout if self.trial_timeout is not None else self.recovery_timeout

    def open_seconds(self, reopened: int) -> float:
        """How long the circuit stays open after its ``reopened``-th failed trial in a row
        (0: it just opened from closed): ``first_trial_after`` doubled that many times,
        capped at ``recovery_timeout``."""
        return min(self.recovery_timeout, self.first_trial_after * 2.0 ** min(reopened, 64))


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """A snapshot of one circuit, for logs, the CLI and tests."""

    state: BreakerState
    failures: int = 0
    retry_in: float = 0.0
    """Seconds until an open circuit allows its trial call (0 when not open)."""
    held_for: float = 0.0
    """Seconds until a rate-limit hold (a 429's ``Retry-After``) ends (0 when none)."""


def breaker_key(provider: str, model: str) -> str:
    """The circuit's name: provider label and model, so agents sharing a backend share it."""
    return f"{provider}/{model}"


class CircuitBreaker(ABC):
    """The interface the router uses; one instance serves every (provider, model) circuit.

    Args:
        settings: thresholds and timeouts.
        metrics: where a transition to open is counted.
    """

    def __init__(
        self, settings: BreakerSettings | None = None, *, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings or BreakerSettings()
        self.metrics = metrics or NullMetrics()

    @abstractmethod
    async def admit(self, key: str) -> Admission:
        """Whether a call may go ahead now, and if not why and for how long; claims the
        half-open trial when it is due (the answer is then :data:`TRIAL`)."""

    async def allow(self, key: str) -> bool:
        """:meth:`admit` as a plain yes or no."""
        return bool(await self.admit(key))

    @abstractmethod
    async def record_success(self, key: str) -> None:
        """The call answered: reset the failure count; a successful trial closes the circuit.

        A rate-limit hold stays: the quota is not back because another call answered.
        """

    async def record_failure(self, key: str, *, retry_after: float | None = None) -> bool:
        """The call failed in a way that says the backend is unwell (retryable errors).

        Args:
            retry_after: the server's hint, seconds: the circuit opens at once for at least
                that long (see the module docstring).

        Returns whether this failure opened the circuit (then logged and counted here).
        """
        opened = await self._record_failure(key, retry_after)
        if opened:
            hint = f" (Retry-After {retry_after:.1f}s)" if retry_after is not None else ""
            logger.warning("breaker=<%s> | circuit opened%s", key, hint)
            self.metrics.circuit_opened(key)
        return opened

    @abstractmethod
    async def _record_failure(self, key: str, retry_after: float | None) -> bool:
        """Count the failure; return True only when it moved the circuit to open."""

    async def record_rate_limited(self, key: str, *, retry_after: float | None = None) -> None:
        """The backend answered 429: not a failure (see the module docstring); a half-open
        trial ends closed, and ``retry_after`` seconds put the candidate on hold."""
        await self._record_rate_limited(key, retry_after)
        if retry_after:
            logger.info("breaker=<%s> | rate-limited, on hold for %.1fs", key, retry_after)

    @abstractmethod
    async def _record_rate_limited(self, key: str, retry_after: float | None) -> None:
        """Close a half-open circuit and extend the hold to ``retry_after`` from now."""

    @abstractmethod
    async def status(self, key: str) -> BreakerStatus:
        """The circuit's current state."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class MemoryCircuitBreaker(CircuitBreaker):
    """Circuits held in this process.

    Args:
        settings: thresholds and timeouts.
        clock: seconds, monotonic; tests pass a fake one to step through transitions.
    """

    def __init__(
        self,
        settings: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(settings, metrics=metrics)
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    async def admit(self, key: str) -> Admission:
        circuit = self._circuits.get(key)
        if circuit is None:
            return ALLOWED
        now = self._clock()
        if now < circuit.hold_until:
            return Admission(Verdict.REFUSED, Refusal.HELD, circuit.hold_until - now)
        if circuit.state is BreakerState.CLOSED:
            return ALLOWED
        if circuit.state is BreakerState.OPEN:
            if now < circuit.open_until:
                return Admission(Verdict.REFUSED, Refusal.OPEN, circuit.open_until - now)
            circuit.state = BreakerState.HALF_OPEN
        elif now < circuit.trial_until:
            return Admission(Verdict.REFUSED, Refusal.TRIAL_RUNNING, circuit.trial_until - now)
        circuit.trial_until = now + self.settings.trial_seconds
        return TRIAL

    async def record_success(self, key: str) -> None:
        circuit = self._circuits.get(key)
        if circuit is None or circuit.state is BreakerState.OPEN:
            return
        if self._clock() < circuit.hold_until:
            circuit.state, circuit.failures, circuit.trial_until = BreakerState.CLOSED, 0, 0.0
            circuit.reopened = 0
        else:
            del self._circuits[key]

    async def _record_failure(self, key: str, retry_after: float | None) -> bool:
        circuit = self._circuits.setdefault(key, _Circuit())
        now = self._clock()
        hint = retry_after or 0.0
        if circuit.state is BreakerState.OPEN:
            # A straggler admitted before the circuit opened: only a longer hint is news.
            if hint > 0:
                circuit.open_until = max(circuit.open_until, now + hint)
            return False
        circuit.failures += 1
        if circuit.state is BreakerState.HALF_OPEN:  # the trial failed: back off further
            circuit.reopened += 1
            duration = max(self.settings.open_seconds(circuit.reopened), hint)
        elif circuit.failures >= self.settings.failure_threshold:
            duration = max(self.settings.open_seconds(circuit.reopened), hint)
        elif hint > 0:
            duration = hint
        else:
            return False
        circuit.state = BreakerState.OPEN
        circuit.open_until = now + duration
        return True

    async def _record_rate_limited(self, key: str, retry_after: float | None) -> None:
        circuit = self._circuits.get(key)
        if circuit is None:
            if not retry_after:
                return
            circuit = self._circuits.setdefault(key, _Circuit())
        if circuit.state is BreakerState.HALF_OPEN:
            circuit.state, circuit.failures, circuit.trial_until = BreakerState.CLOSED, 0, 0.0
            circuit.reopened = 0
        if retry_after:
            circuit.hold_until = max(circuit.hold_until, self._clock() + retry_after)

    async def status(self, key: str) -> BreakerStatus:
        circuit = self._circuits.get(key)
        if circuit is None:
            return BreakerStatus(BreakerState.CLOSED)
        now = self._clock()
        retry_in = 0.0
        if circuit.state is BreakerState.OPEN:
            retry_in = max(0.0, circuit.open_until - now)
        held_for = max(0.0, circuit.hold_until - now)
        return BreakerStatus(circuit.state, circuit.failures, retry_in, held_for)


@dataclass
class _Circuit:
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    open_until: float = 0.0
    trial_until: float = 0.0
    hold_until: float = 0.0
    reopened: int = 0
    """Failed trials in a row since the circuit was last closed (the backoff's exponent)."""


def build_breaker(
    redis_url: str | None,
    *,
    failure_threshold: int = 3,
    recovery_timeout: float = 60.0,
    first_trial_after: float = 2.0,
    prefix: str = DEFAULT_PREFIX,
    metrics: Metrics | None = None,
) -> CircuitBreaker:
    """A Redis breaker when a URL is configured (shared by every instance), else in memory."""
    settings = BreakerSettings(
        failure_threshold, recovery_timeout, first_trial_after=first_trial_after
    )
    if redis_url:
        from astromesh.models.breaker_redis import RedisCircuitBreaker

        return RedisCircuitBreaker(redis_url, settings, prefix=prefix, metrics=metrics)
    return MemoryCircuitBreaker(settings, metrics=metrics)


__all__ = [
    "ALLOWED",
    "TRIAL",
    "Admission",
    "BreakerSettings",
    "BreakerState",
    "BreakerStatus",
    "CircuitBreaker",
    "MemoryCircuitBreaker",
    "Refusal",
    "Verdict",
    "breaker_key",
    "build_breaker",
]
