"""Exactly-once claims on message ids and per-sender rate limits: in Redis, or in memory.

Platforms deliver a message more than once (Meta retries until it sees a 200, and a retry
can arrive while the first delivery is still being handled, on another Lambda instance), so
each message id is *claimed* before anything else happens: ``SET key 1 NX EX ttl`` is
atomic, so of N concurrent deliveries exactly one sees it succeed. Powertools' idempotency
utility was the alternative; it stores a handler's *response* per payload hash, while a
delivery holds several messages and what must happen once is each message, claimed before
the work is handed off, so the one Redis command fits better and needs no extra table.

The rate limit is a sliding window per sender: a sorted set of the accepted messages'
times, trimmed to the window by a Lua script that decides and records in one step (Redis'
clock, so Lambda instances never disagree about "now"). Refused messages are counted
separately, so the caller can tell the sender once per burst rather than on every message.

A conversation's *turn* is a lease: while the agent answers one message of a sender, their
next message waits for it (``SET key token NX PX ttl``, released only by its holder's token,
so a lease that outlived its TTL and was taken over is never freed by the late holder).
Two runs of one session at once would each read the history without the other's turn and
write both back interleaved.

Without Redis (the local server, a single process) all three fall back to memory: correct
within the process, not shared across processes, and forgotten on restart. Lambda functions
must set ``ASTROMESH_REDIS_URL``.

Where the runtime's state is in PostgreSQL (the ``postgres`` backend, or Redis tiered over
PostgreSQL), claims are taken there instead (:class:`DurableClaims`, the ``message_claims``
table): a Redis that restarts empty forgets its ``seen`` keys, and Meta's redelivery of a
message answered before the restart would be answered again. A claim is one
``INSERT ... ON CONFLICT`` (atomic like ``SET NX``), so it costs one round trip either way.
Rate windows and turns stay in Redis: losing them on a restart costs nothing lasting.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from astromesh.errors import StateUnavailable
from astromesh.stores.base import StateBackend
from astromesh.stores.faults import translate_faults

PREFIX_ENV = "ASTROMESH_CHANNELS_REDIS_PREFIX"
DEFAULT_PREFIX = "astromesh:channels"
"""The Redis key prefix of the channels' guards and of the WebSocket connection registry
(here, not in the inbox, so the WebSocket functions read it without the inbox's httpx)."""

logger = logging.getLogger(__name__)

DEFAULT_CLAIM_TTL_SECONDS = 7 * 24 * 3600
"""How long a message id is remembered: Meta retries an unacknowledged delivery for up to
seven days."""

_WINDOW_LUA = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window_ms = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window_ms)
local count = redis.call('ZCARD', KEYS[1])
if count < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window_ms)
  redis.call('DEL', KEYS[2])
  return {1, count + 1}
end
local refused = redis.call('INCR', KEYS[2])
if refused == 1 then redis.call('PEXPIRE', KEYS[2], window_ms) end
return {0, refused}
"""

_UNLEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class RateVerdict:
    """``allowed``; otherwise ``refused`` is how many messages were refused in this burst
    (1 for the first)."""

    allowed: bool
    refused: int = 0


class Guards(ABC):
    """Claims and rate limits under one key namespace."""

    @abstractmethod
    async def claim(self, key: str, ttl_seconds: int = DEFAULT_CLAIM_TTL_SECONDS) -> bool:
        """``True`` for the first caller with ``key`` within ``ttl_seconds``, ``False``
        for every other (concurrent or later) one."""

    @abstractmethod
    async def release(self, key: str) -> None:
        """Forget a claim (its work could not be handed off, so a redelivery should run)."""

    @abstractmethod
    async def hit(self, key: str, *, window_seconds: float, max_messages: int) -> RateVerdict:
        """Count one message of ``key`` if fewer than ``max_messages`` were accepted in the
        last ``window_seconds``."""

    @abstractmethod
    async def lease(self, key: str, ttl_seconds: float) -> str | None:
        """Take ``key``'s lease for ``ttl_seconds`` if nobody holds it: its token, else
        ``None``."""

    @abstractmethod
    async def unlease(self, key: str, token: str) -> None:
        """Give the lease back, if ``token`` still holds it."""

    async def aclose(self) -> None:  # noqa: B027 - memory guards hold nothing to close
        """Release connections."""


@dataclass
class MemoryGuards(Guards):
    """One process's guards (no ``await`` inside a check, so each is atomic in asyncio)."""

    _claims: dict[str, float] = field(default_factory=dict)
    _windows: dict[str, list[float]] = field(default_factory=dict)
    _refused: dict[str, int] = field(default_factory=dict)
    _leases: dict[str, tuple[str, float]] = field(default_factory=dict)

    async def claim(self, key: str, ttl_seconds: int = DEFAULT_CLAIM_TTL_SECONDS) -> bool:
        now = time.monotonic()
        if len(self._claims) > 10_000:
            self._claims = {k: until for k, until in self._claims.items() if until > now}
        until = self._claims.get(key)
        if until is not None and until > now:
            return False
        self._claims[key] = now + ttl_seconds
        return True

    async def release(self, key: str) -> None:
        self._claims.pop(key, None)

    async def hit(self, key: str, *, window_seconds: float, max_messages: int) -> RateVerdict:
        now = time.monotonic()
        times = [t for t in self._windows.get(key, []) if t > now - window_seconds]
        if len(times) < max_messages:
            times.append(now)
            self._windows[key] = times
            self._refused.pop(key, None)
            return RateVerdict(True)
        self._windows[key] = times
        self._refused[key] = self._refused.get(key, 0) + 1
        return RateVerdict(False, self._refused[key])

    async def lease(self, key: str, ttl_seconds: float) -> str | None:
        now = time.monotonic()
        held = self._leases.get(key)
        if held is not None and held[1] > now:
            return None
        token = uuid.uuid4().hex
        self._leases[key] = (token, now + ttl_seconds)
        return token

    async def unlease(self, key: str, token: str) -> None:
        held = self._leases.get(key)
        if held is not None and held[0] == token:
            del self._leases[key]


@translate_faults("redis")
class RedisGuards(Guards):
    """Guards shared by every process using the same Redis and ``prefix``.

    Its client retries connection errors and health-checks idle connections
    (:func:`~astromesh.stores.redis_client.connect`), so a Redis restart does not fail the
    first command of each pooled connection; a Redis that stays down raises
    :class:`~astromesh.errors.StateUnavailable` (the webhook answers ``503``, and the
    platform redelivers).
    """

    def __init__(self, url: str, *, prefix: str) -> None:
        from astromesh.stores.redis_client import connect  # the redis extra; only when configured

        self.prefix = prefix
        self._client: Any = connect(url)
        self._window = self._client.register_script(_WINDOW_LUA)
        self._unlease = self._client.register_script(_UNLEASE_LUA)

    async def claim(self, key: str, ttl_seconds: int = DEFAULT_CLAIM_TTL_SECONDS) -> bool:
        return bool(await self._client.set(f"{self.prefix}:seen:{key}", 1, nx=True, ex=ttl_seconds))

    async def release(self, key: str) -> None:
        await self._client.delete(f"{self.prefix}:seen:{key}")

    async def hit(self, key: str, *, window_seconds: float, max_messages: int) -> RateVerdict:
        base = f"{self.prefix}:rate:{key}"
        allowed, number = await self._window(
            keys=[base, f"{base}:refused"],
            args=[int(window_seconds * 1000), max_messages, uuid.uuid4().hex],
        )
        return RateVerdict(True) if allowed else RateVerdict(False, int(number))

    async def lease(self, key: str, ttl_seconds: float) -> str | None:
        token = uuid.uuid4().hex
        taken = await self._client.set(
            f"{self.prefix}:turn:{key}", token, nx=True, px=max(1, int(ttl_seconds * 1000))
        )
        return token if taken else None

    async def unlease(self, key: str, token: str) -> None:
        await self._unlease(keys=[f"{self.prefix}:turn:{key}"], args=[token])

    async def aclose(self) -> None:
        await self._client.aclose()


StateSource = Callable[[], Awaitable[StateBackend]]
"""How durable claims find the runtime's state backend (``AgentRuntime.state``): asked on
first use, so building the guards opens nothing."""

_CLAIM_SQL = (
    "INSERT INTO message_claims (claim_key, expires_at)"
    " VALUES (%s, now() + make_interval(secs => %s))"
    " ON CONFLICT (claim_key) DO UPDATE"
    " SET claimed_at = now(), expires_at = EXCLUDED.expires_at"
    " WHERE message_claims.expires_at <= now()"
    " RETURNING claim_key"
)
_NO_LEASE = "-"
"""The token of a turn taken while Redis was down (nothing to give back)."""
_PURGE_EVERY = 500
"""On average one claim in this many also deletes expired rows, keeping the table to about
a week of message ids without a scheduled job."""


def postgres_of(backend: StateBackend) -> Any | None:
    """The PostgreSQL backend holding ``backend``'s runs (itself, or a tiered one's durable
    tier), or ``None`` when the state is not in PostgreSQL."""
    candidate = getattr(backend, "durable_backend", backend)
    return candidate if hasattr(candidate, "execute_count") and hasattr(candidate, "dsn") else None


class DurableClaims(Guards):
    """``inner``'s guards, with claims kept in PostgreSQL when the state is there.

    A claim row is written before the platform's ``200``, so a message acknowledged once is
    claimed durably whatever happens to Redis afterwards. PostgreSQL down answers ``503``
    (:class:`~astromesh.errors.StateUnavailable`) before the acknowledgement: the platform
    redelivers later, nothing is lost.
    """

    def __init__(self, inner: Guards, state: StateSource, *, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix
        self._state = state
        self._postgres: Any | None = None
        self._resolved = False

    async def _pg(self) -> Any | None:
        if not self._resolved:
            self._postgres = postgres_of(await self._state())
            self._resolved = True
        return self._postgres

    async def claim(self, key: str, ttl_seconds: int = DEFAULT_CLAIM_TTL_SECONDS) -> bool:
        pg = await self._pg()
        if pg is None:
            return await self.inner.claim(key, ttl_seconds)
        rows = await pg.execute(_CLAIM_SQL, (f"{self.prefix}:{key}", ttl_seconds))
        if random.random() < 1 / _PURGE_EVERY:  # a sampling rate, not a secret
            await pg.execute("DELETE FROM message_claims WHERE expires_at < now()")
        return bool(rows)

    async def release(self, key: str) -> None:
        pg = await self._pg()
        if pg is None:
            await self.inner.release(key)
            return
        await pg.execute(
            "DELETE FROM message_claims WHERE claim_key = %s", (f"{self.prefix}:{key}",)
        )

    # Rate windows and turns fail open while Redis is down: the claim (durable, above) has
    # already been taken, and failing now would leave a claimed message that nobody answers.
    # For the outage a sender is not rate-limited and two of their messages may run at once.

    async def hit(self, key: str, *, window_seconds: float, max_messages: int) -> RateVerdict:
        try:
            return await self.inner.hit(
                key, window_seconds=window_seconds, max_messages=max_messages
            )
        except StateUnavailable as exc:
            logger.warning("key=<%s> | rate limit not checked: %s", key, exc.message)
            return RateVerdict(True)

    async def lease(self, key: str, ttl_seconds: float) -> str | None:
        try:
            return await self.inner.lease(key, ttl_seconds)
        except StateUnavailable as exc:
            logger.warning("key=<%s> | turn not taken, answering anyway: %s", key, exc.message)
            return _NO_LEASE

    async def unlease(self, key: str, token: str) -> None:
        if token == _NO_LEASE:
            return
        try:
            await self.inner.unlease(key, token)
        except StateUnavailable as exc:  # the lease expires by itself
            logger.warning("key=<%s> | turn not given back: %s", key, exc.message)

    async def aclose(self) -> None:
        await self.inner.aclose()  # the state backend belongs to the runtime


def open_guards(redis_url: str | None, *, prefix: str, state: StateSource | None = None) -> Guards:
    """Redis guards when a URL is configured, memory ones otherwise; with ``state`` (the
    runtime's backend), claims are durable in PostgreSQL when that backend is there."""
    inner: Guards = RedisGuards(redis_url, prefix=prefix) if redis_url else MemoryGuards()
    return DurableClaims(inner, state, prefix=prefix) if state is not None else inner
