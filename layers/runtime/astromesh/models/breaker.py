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
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
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


# Each script reads the circuit's hash, decides with Redis's own clock and writes back in one
# atomic step. Fields: s (state), f (consecutive failures), t (opened at), r (open until),
# u (trial until), h (rate-limit hold until), n (failed trials in a row: the backoff's
# exponent). A hash written before ``r`` existed has only
# ``t``: its circuit stays open until ``t + recovery_timeout``, as it did then. The key's TTL
# is only ever raised (``keep``), so a long hold or opening is never cut short by a later
# write with the ordinary TTL.
_NOW = "local tm = redis.call('TIME'); local now = tonumber(tm[1]) + tonumber(tm[2]) / 1000000\n"
_KEEP = """
local function keep(ttl)
  if redis.call('TTL', KEYS[1]) < tonumber(ttl) then redis.call('EXPIRE', KEYS[1], ttl) end
end
"""
_OPEN_UNTIL = """
local function open_until(v_r, v_t, recovery)
  return tonumber(v_r) or (tonumber(v_t or '0') + tonumber(recovery))
end
"""

# ARGV: recovery_timeout, trial_seconds, ttl. Returns 1 (allowed), 2 (the trial) or
# {0, reason, seconds until it lapses}.
_ALLOW_LUA = (
    _NOW
    + _KEEP
    + _OPEN_UNTIL
    + """
local v = redis.call('HMGET', KEYS[1], 's', 'h', 'r', 't', 'u')
local h = tonumber(v[2])
if h and now < h then return {0, 'held', tostring(h - now)} end
local s = v[1]
if not s or s == 'closed' then return 1 end
if s == 'open' then
  local r = open_until(v[3], v[4], ARGV[1])
  if now < r then return {0, 'open', tostring(r - now)} end
else
  local u = tonumber(v[5] or '0')
  if now < u then return {0, 'trial', tostring(u - now)} end
end
redis.call('HSET', KEYS[1], 's', 'half_open', 'u', tostring(now + tonumber(ARGV[2])))
keep(ARGV[3])
return 2
"""
)

_SUCCESS_LUA = (
    _NOW
    + """
local v = redis.call('HMGET', KEYS[1], 's', 'h')
if v[1] == 'open' then return 0 end
local h = tonumber(v[2])
if h and now < h then
  redis.call('HDEL', KEYS[1], 's', 'f', 't', 'r', 'u', 'n')
  return 1
end
redis.call('DEL', KEYS[1])
return 1
"""
)

# ARGV: failure_threshold, recovery_timeout, ttl, hint (0 = none), first_trial_after.
# Returns 1 when it opened.
_FAILURE_LUA = (
    _NOW
    + _KEEP
    + _OPEN_UNTIL
    + """
local v = redis.call('HMGET', KEYS[1], 's', 'r', 't', 'n')
local recovery = tonumber(ARGV[2])
local hint = tonumber(ARGV[4])
local n = tonumber(v[4] or '0')
if v[1] == 'open' then
  if hint > 0 and now + hint > open_until(v[2], v[3], recovery) then
    redis.call('HSET', KEYS[1], 'r', tostring(now + hint))
    keep(ARGV[3])
  end
  return 0
end
local f = redis.call('HINCRBY', KEYS[1], 'f', 1)
local duration = 0
if v[1] == 'half_open' then n = n + 1 end
if v[1] == 'half_open' or f >= tonumber(ARGV[1]) then
  local backoff = math.min(recovery, tonumber(ARGV[5]) * 2 ^ math.min(n, 64))
  duration = math.max(backoff, hint)
elseif hint > 0 then
  duration = hint
end
local opened = 0
if duration > 0 then
  redis.call('HSET', KEYS[1], 's', 'open', 't', tostring(now), 'r', tostring(now + duration),
    'n', tostring(n))
  opened = 1
else
  redis.call('HSET', KEYS[1], 's', 'closed')
end
keep(ARGV[3])
return opened
"""
)

# ARGV: hold seconds (0 = none), ttl.
_RATE_LIMITED_LUA = (
    _NOW
    + _KEEP
    + """
local v = redis.call('HMGET', KEYS[1], 's', 'h')
local hold = tonumber(ARGV[1])
if v[1] == 'half_open' then
  redis.call('HSET', KEYS[1], 's', 'closed', 'f', '0')
  redis.call('HDEL', KEYS[1], 'u', 'n')
end
if hold > 0 and now + hold > tonumber(v[2] or '0') then
  redis.call('HSET', KEYS[1], 'h', tostring(now + hold))
end
if v[1] == 'half_open' or hold > 0 then keep(ARGV[2]) end
return 1
"""
)

# ARGV: recovery_timeout.
_STATUS_LUA = (
    _NOW
    + _OPEN_UNTIL
    + """
local v = redis.call('HMGET', KEYS[1], 's', 'f', 'r', 't', 'h')
local r = 0
if v[1] == 'open' then r = open_until(v[3], v[4], ARGV[1]) end
return {v[1] or 'closed', v[2] or '0', tostring(r), v[5] or '0', tostring(now)}
"""
)

_REFUSALS = {"open": Refusal.OPEN, "trial": Refusal.TRIAL_RUNNING, "held": Refusal.HELD}


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
                "rate_limited": _RATE_LIMITED_LUA,
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

    def _ttl_with(self, hint: float | None) -> int:
        """The TTL of a record that must also outlive a hinted opening or hold."""
        return self._ttl + (math.ceil(hint) if hint else 0)

    async def _run(self, name: str, key: str, *args: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await self._redis.script(name)(keys=[self._key(key)], args=list(args))
        except (RedisError, OSError) as exc:
            logger.warning("breaker=<%s> | redis unavailable, failing open: %s", key, exc)
            return None

    async def admit(self, key: str) -> Admission:
        s = self.settings
        result = await self._run("allow", key, s.recovery_timeout, s.trial_seconds, self._ttl)
        if result is None or result == 1:
            return ALLOWED
        if result == 2:
            return TRIAL
        _, reason, wait = result
        return Admission(Verdict.REFUSED, _REFUSALS[reason], max(0.0, float(wait)))

    async def record_success(self, key: str) -> None:
        await self._run("success", key)

    async def _record_failure(self, key: str, retry_after: float | None) -> bool:
        s = self.settings
        opened = await self._run(
            "failure",
            key,
            s.failure_threshold,
            s.recovery_timeout,
            self._ttl_with(retry_after),
            retry_after or 0,
            s.first_trial_after,
        )
        return opened is not None and int(opened) == 1

    async def _record_rate_limited(self, key: str, retry_after: float | None) -> None:
        await self._run("rate_limited", key, retry_after or 0, self._ttl_with(retry_after))

    async def status(self, key: str) -> BreakerStatus:
        result = await self._run("status", key, self.settings.recovery_timeout)
        if result is None:
            return BreakerStatus(BreakerState.CLOSED)
        state, failures, open_until, hold_until, now = result
        retry_in = max(0.0, float(open_until) - float(now)) if state == BreakerState.OPEN else 0.0
        held_for = max(0.0, float(hold_until) - float(now))
        return BreakerStatus(BreakerState(state), int(failures), retry_in, held_for)

    async def aclose(self) -> None:
        await self._redis.aclose()


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
    "RedisCircuitBreaker",
    "Refusal",
    "Verdict",
    "breaker_key",
    "build_breaker",
]
