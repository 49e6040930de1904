"""The circuit breaker whose state lives in Redis, so every Lambda instance sees one circuit.

Each transition is one Lua script, so two instances can never both claim the half-open
trial, and the clock is Redis's ``TIME`` so instances with skewed clocks agree on when the
circuit may close (the rules are :mod:`astromesh.models.breaker`'s, the same tests run
against both stores).

**The per-process cache.** Asking Redis before and after every model call costs two round
trips (366-456 µs measured, against 6-13 µs in memory). So each instance remembers, for
``cache_seconds`` (1 s by default), what Redis last answered for a circuit:

- a *clean closed* circuit (no failure counted): calls are admitted without a round trip,
  and their successes are not reported (there is nothing to reset);
- a *refusal* (open, held by a 429's ``Retry-After``, trial running): refused locally until
  it lapses or the cache time ends, whichever is first; open circuits and holds only ever get
  longer, so only a trial that ends early is seen up to ``cache_seconds`` late.

Every failure, rate limit, half-open trial and success on a circuit with failures counted
still goes to Redis at once, and drops the cached answer, so the next call reads Redis again.
What the cache trades: for up to ``cache_seconds`` after *another* instance opened a
circuit, this one may still send calls to that backend (each failing call goes to Redis and
ends the stale view, so that is at most the calls already in flight); and for as long, this
instance's successes do not reset failures another instance counted (so "consecutive"
failures are counted across instances with that much slack). ``cache_seconds=0`` turns the
cache off: every call makes its round trips, as before.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from astromesh.models.breaker import (
    ALLOWED,
    DEFAULT_PREFIX,
    TRIAL,
    Admission,
    BreakerSettings,
    BreakerState,
    BreakerStatus,
    CircuitBreaker,
    Refusal,
    Verdict,
)
from astromesh.stores.redis_client import LoopBoundRedis
from astromesh.telemetry.metrics import Metrics

__all__ = ["STATE_CACHE_SECONDS", "RedisCircuitBreaker"]

logger = logging.getLogger(__name__)

STATE_CACHE_SECONDS = 1.0
"""How long an instance trusts what Redis last said about a circuit (see above)."""


@dataclass(frozen=True, slots=True)
class _Cached:
    """What Redis last answered for one circuit, trusted until ``until`` (monotonic)."""

    until: float
    admission: Admission
    clean: bool = False
    """Closed with no failure counted: a success has nothing to reset."""
    lapses: float = 0.0
    """When a refusal lapses (monotonic), for the wait it reports."""


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

# ARGV: recovery_timeout, trial_seconds, ttl. Returns 1 (allowed, no failure counted), 3
# (allowed, failures counted: a success must reset them), 2 (the trial) or {0, reason,
# seconds until it lapses}.
_ALLOW_LUA = (
    _NOW
    + _KEEP
    + _OPEN_UNTIL
    + """
local v = redis.call('HMGET', KEYS[1], 's', 'h', 'r', 't', 'u', 'f')
local h = tonumber(v[2])
if h and now < h then return {0, 'held', tostring(h - now)} end
local s = v[1]
if not s or s == 'closed' then
  if tonumber(v[6] or '0') > 0 then return 3 end
  return 1
end
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
        cache_seconds: how long this process trusts Redis's last answer about a circuit (the
            module docstring says what that trades); 0 asks Redis on every call.
        clock: seconds, monotonic, for the cache only (the circuit's clock is Redis's).
    """

    def __init__(
        self,
        url: str,
        settings: BreakerSettings | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 0.5,
        metrics: Metrics | None = None,
        cache_seconds: float = STATE_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, metrics=metrics)
        self.url = url
        self.prefix = prefix
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
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
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now < cached.until:
            if cached.admission:
                return cached.admission
            wait = max(0.0, cached.lapses - now)
            return Admission(Verdict.REFUSED, cached.admission.reason, wait)
        s = self.settings
        result = await self._run("allow", key, s.recovery_timeout, s.trial_seconds, self._ttl)
        if result is None:  # Redis unreachable: fail open, and ask again next time
            return ALLOWED
        if result == 2:
            self._cache.pop(key, None)
            return TRIAL
        if result in (1, 3):
            self._remember(key, ALLOWED, self.cache_seconds, clean=result == 1)
            return ALLOWED
        _, reason, wait = result
        refused = Admission(Verdict.REFUSED, _REFUSALS[reason], max(0.0, float(wait)))
        self._remember(key, refused, min(refused.wait, self.cache_seconds))
        return refused

    def _remember(
        self, key: str, admission: Admission, seconds: float, *, clean: bool = False
    ) -> None:
        """Trust ``admission`` for ``seconds`` (nothing when the cache is off)."""
        if seconds > 0:
            now = self._clock()
            self._cache[key] = _Cached(now + seconds, admission, clean, now + admission.wait)

    async def record_success(self, key: str) -> None:
        cached = self._cache.get(key)
        if cached is not None and cached.clean and self._clock() < cached.until:
            return  # closed with no failure counted when last asked: nothing to reset
        self._cache.pop(key, None)
        await self._run("success", key)

    async def _record_failure(self, key: str, retry_after: float | None) -> bool:
        self._cache.pop(key, None)
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
        self._cache.pop(key, None)
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
