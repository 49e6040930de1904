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
"""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

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


class RedisGuards(Guards):
    """Guards shared by every process using the same Redis and ``prefix``."""

    def __init__(self, url: str, *, prefix: str) -> None:
        import redis.asyncio as aioredis  # the redis extra; only when configured

        self.prefix = prefix
        self._client: Any = aioredis.Redis.from_url(url)
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


def open_guards(redis_url: str | None, *, prefix: str) -> Guards:
    """Redis guards when a URL is configured, memory ones otherwise."""
    return RedisGuards(redis_url, prefix=prefix) if redis_url else MemoryGuards()
