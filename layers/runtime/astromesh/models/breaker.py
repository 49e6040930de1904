"""Circuit breakers per (provider, model): stop calling a backend that keeps failing.

closed --(``failure_threshold`` consecutive failures)--> open --(``recovery_timeout``)-->
half-open: exactly one trial call goes through; its success closes the circuit, its failure
opens it again for another ``recovery_timeout``. Callers that find the circuit open (or a trial
already running) skip the candidate instead of waiting on it.

Two stores behave identically (the same tests run against both):

- :class:`MemoryCircuitBreaker`: one process (the CLI, the local server, tests).
- :class:`RedisCircuitBreaker`: every Lambda instance sees the same circuit. Each transition is
  one Lua script, so two instances can never both claim the half-open trial, and the clock is
  Redis's ``TIME`` so instances with skewed clocks agree on when the circuit may close.

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
from enum import StrEnum
from typing import Any

from astromesh.stores.redis_client import LoopBoundRedis
from astromesh.telemetry.metrics import Metrics, NullMetrics

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "astromesh:breaker"


class BreakerState(StrEnum):
    """Where a circuit is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """How quickly a circuit opens and when it may close.

    Attributes:
        failure_threshold: consecutive retryable failures that open the circuit.
        recovery_timeout: seconds an open circuit waits before allowing one trial call.
        trial_timeout: seconds the half-open trial is reserved for its caller; when that
            caller never reports (a Lambda frozen mid-call, a cancelled stream) another caller
            may try after this. Defaults to ``recovery_timeout``.
    """

    failure_threshold: int = 3
    recovery_timeout: float = 60.0
    trial_timeout: float | None = None

    @property
    def trial_seconds(self) -> float:
        return self.trial_timeout if self.trial_timeout is not None else self.recovery_timeout


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """A snapshot of one circuit, for logs, the CLI and tests."""

    state: BreakerState
    failures: int = 0
    retry_in: float = 0.0
    """Seconds until an open circuit allows its trial call (0 when not open)."""


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
    async def allow(self, key: str) -> bool:
        """Whether a call may go ahead now; claims the half-open trial when it is due."""

    @abstractmethod
    async def record_success(self, key: str) -> None:
        """The call answered: reset the failure count; a successful trial closes the circuit."""

    async def record_failure(self, key: str) -> bool:
        """The call failed in a way that says the backend is unwell (retryable errors).

        Returns whether this failure opened the circuit (then logged and counted here).
        """
        opened = await self._record_failure(key)
        if opened:
            logger.warning("breaker=<%s> | circuit opened", key)
            self.metrics.circuit_opened(key)
        return opened

    @abstractmethod
    async def _record_failure(self, key: str) -> bool:
        """Count the failure; return True only when it moved the circuit to open."""

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

    async def allow(self, key: str) -> bool:
        circuit = self._circuits.get(key)
        if circuit is None or circuit.state is BreakerState.CLOSED:
            return True
        now = self._clock()
        if circuit.state is BreakerState.OPEN:
            if now < circuit.opened_at + self.settings.recovery_timeout:
                return False
            circuit.state = BreakerState.HALF_OPEN
        elif now < circuit.trial_until:
            return False  # a trial is already running
        circuit.trial_until = now + self.settings.trial_seconds
        return True

    async def record_success(self, key: str) -> None:
        circuit = self._circuits.get(key)
        if circuit is not None and circuit.state is not BreakerState.OPEN:
            del self._circuits[key]

    async def _record_failure(self, key: str) -> bool:
        circuit = self._circuits.setdefault(key, _Circuit())
        if circuit.state is BreakerState.OPEN:
            return False  # a straggler admitted before the circuit opened: no new information
        circuit.failures += 1
        if (
            circuit.state is BreakerState.HALF_OPEN
            or circuit.failures >= self.settings.failure_threshold
        ):
            circuit.state = BreakerState.OPEN
            circuit.opened_at = self._clock()
            return True
        return False

    async def status(self, key: str) -> BreakerStatus:
        circuit = self._circuits.get(key)
        if circuit is None:
            return BreakerStatus(BreakerState.CLOSED)
        retry_in = 0.0
        if circuit.state is BreakerState.OPEN:
            due = circuit.opened_at + self.settings.recovery_timeout
            retry_in = max(0.0, due - self._clock())
        return BreakerStatus(circuit.state, circuit.failures, retry_in)


@dataclass
class _Circuit:
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    trial_until: float = 0.0


# Each script reads the circuit's hash, decides with Redis's own clock and writes back in one
# atomic step. Fields: s (state), f (consecutive failures), t (opened at), u (trial until).
_NOW = "local tm = redis.call('TIME'); local now = tonumber(tm[1]) + tonumber(tm[2]) / 1000000\n"

_ALLOW_LUA = (
    _NOW
    + """
local s = redis.call('HGET', KEYS[1], 's')
if not s or s == 'closed' then return 1 end
if s == 'open' then
  if now < tonumber(redis.call('HGET', KEYS[1], 't')) + tonumber(ARGV[1]) then return 0 end
elseif now < tonumber(redis.call('HGET', KEYS[1], 'u') or '0') then
  return 0
end
redis.call('HSET', KEYS[1], 's', 'half_open', 'u', tostring(now + tonumber(ARGV[2])))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
)

_SUCCESS_LUA = """
if redis.call('HGET', KEYS[1], 's') == 'open' then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

_FAILURE_LUA = (
    _NOW
    + """
local s = redis.call('HGET', KEYS[1], 's')
if s == 'open' then return 0 end
local f = redis.call('HINCRBY', KEYS[1], 'f', 1)
local opened = 0
if s == 'half_open' or f >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 's', 'open', 't', tostring(now))
  opened = 1
else
  redis.call('HSET', KEYS[1], 's', 'closed')
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return opened
"""
)

_STATUS_LUA = (
    _NOW
    + """
local v = redis.call('HMGET', KEYS[1], 's', 'f', 't')
return {v[1] or 'closed', v[2] or '0', v[3] or '0', tostring(now)}
"""
)


class RedisCircuitBreaker(CircuitBreaker):
    """Circuits in Redis, shared by every process that uses the same URL and prefix.

    Args:
        url: ``redis://host:port/db``.
        settings: thresholds and timeouts (each process passes its own; keep them equal).
        prefix: key namespace; one hash per circuit under ``{prefix}:{provider}/{model}``.
        socket_timeout: seconds before a Redis call gives up (the breaker then fails open).
        metrics: where a transition to open is counted.
    """

    def __init__(
        self,
        url: str,
        settings: BreakerSettings | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 0.5,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(settings, metrics=metrics)
        self.url = url
        self.prefix = prefix
        self._redis = LoopBoundRedis(
            url,
            socket_timeout=socket_timeout,
            scripts={
                "allow": _ALLOW_LUA,
                "success": _SUCCESS_LUA,
                "failure": _FAILURE_LUA,
                "status": _STATUS_LUA,
            },
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    @property
    def _ttl(self) -> int:
        """Seconds a circuit's record outlives its last change: long enough to stay open and
        count consecutive failures, short enough that abandoned keys disappear."""
        return max(600, int(self.settings.recovery_timeout * 4) + 1)

    async def _run(self, name: str, key: str, *args: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await self._redis.script(name)(keys=[self._key(key)], args=list(args))
        except (RedisError, OSError) as exc:
            logger.warning("breaker=<%s> | redis unavailable, failing open: %s", key, exc)
            return None

    async def allow(self, key: str) -> bool:
        s = self.settings
        result = await self._run("allow", key, s.recovery_timeout, s.trial_seconds, self._ttl)
        return result is None or int(result) == 1

    async def record_success(self, key: str) -> None:
        await self._run("success", key)

    async def _record_failure(self, key: str) -> bool:
        opened = await self._run("failure", key, self.settings.failure_threshold, self._ttl)
        return opened is not None and int(opened) == 1

    async def status(self, key: str) -> BreakerStatus:
        result = await self._run("status", key)
        if result is None:
            return BreakerStatus(BreakerState.CLOSED)
        state, failures, opened_at, now = result
        retry_in = 0.0
        if state == BreakerState.OPEN:
            retry_in = max(0.0, float(opened_at) + self.settings.recovery_timeout - float(now))
        return BreakerStatus(BreakerState(state), int(failures), retry_in)

    async def aclose(self) -> None:
        await self._redis.aclose()


def build_breaker(
    redis_url: str | None,
    *,
    failure_threshold: int = 3,
    recovery_timeout: float = 60.0,
    prefix: str = DEFAULT_PREFIX,
    metrics: Metrics | None = None,
) -> CircuitBreaker:
    """A Redis breaker when a URL is configured (shared by every instance), else in memory."""
    settings = BreakerSettings(failure_threshold, recovery_timeout)
    if redis_url:
        return RedisCircuitBreaker(redis_url, settings, prefix=prefix, metrics=metrics)
    return MemoryCircuitBreaker(settings, metrics=metrics)


__all__ = [
    "BreakerSettings",
    "BreakerState",
    "BreakerStatus",
    "CircuitBreaker",
    "MemoryCircuitBreaker",
    "RedisCircuitBreaker",
    "breaker_key",
    "build_breaker",
]
