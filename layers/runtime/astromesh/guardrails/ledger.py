"""Budget ledgers: spending shared by every run of an agent, in one process or in all of them.

A ``cost_limit`` with ``max_cost_per_session``, ``max_cost_per_day`` or ``max_tokens_per_day``
cannot be enforced from one run's usage: N runs (in N Lambda instances) each below the limit
can together spend N times it. These budgets are therefore counted in a ledger that every run
charges: :class:`MemoryBudgetLedger` in one process, :class:`RedisBudgetLedger` across
processes (the runtime picks Redis whenever a Redis URL is configured).

Reserve, then settle
--------------------
Before each step the pipeline calls :meth:`BudgetLedger.reserve` with an estimate of the
step's usage. Atomically (one Lua script in Redis, one lock in memory) the ledger checks
that no budget is *reached* (``spent < limit``) and, if so, adds the estimate to every
budget; otherwise it adds nothing and names the budget that was reached (the step is then
refused with code ``cost_limit``). After the step, :meth:`BudgetLedger.settle` adds the
difference between the real usage (the run's usage after the step minus before it) and the
estimate. Estimates of steps still running are thus counted by every other run: concurrent
runs see each other's in-flight steps and stop earlier.

The bound
---------
Let ``L`` be a budget and ``k`` the last step admitted against it. At ``k``'s admission the
ledger held ``V < L`` (settled usage plus estimates of steps in flight). Every step admitted
earlier is either settled (its real usage is in ``V``) or in flight (its estimate ``e >= 0``
is in ``V``). So the final total is::

    total = V + real(k) + sum(real(j) - e(j) for j in flight at k's admission)
          < L + sum(real(j) for j in F)

where ``F`` is ``k`` plus the steps in flight when ``k`` was admitted. A run has at most one
step in flight, so with ``N`` concurrent runs the overshoot is less than ``N`` times the
largest step's usage (a ReAct step is one model call; a pattern that calls several models
in one step counts them all). With no concurrency (``N = 1``) it is less than one step.

What is counted, and when
-------------------------
- The usage of model calls made by pattern steps. Model calls outside steps (a summary
  folded as a run ends, a summarising tool: :mod:`astromesh.runs.usage`) are in
  ``run.usage``, so per-run limits see them, but they are not reserved and settled here, so
  the shared day and session budgets do not count them.
- Day budgets are per UTC day: keys carry the date of admission and expire at the next UTC
  midnight, so a day's total starts at zero. A step admitted before midnight settles into the
  day that admitted it. ``max_cost_per_session`` is per session per UTC day, the same way.
- A process that dies between reserve and settle leaves its estimate charged: a crash can
  only over-count (refuse earlier), never let spending through uncounted.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from astromesh.stores.faults import translate_faults
from astromesh.stores.redis_client import LoopBoundRedis

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

DEFAULT_REDIS_PREFIX = "astromesh:budget"


@dataclass(frozen=True, slots=True)
class Spend:
    """Tokens (in + out) and cost in currency units."""

    tokens: int = 0
    cost: float = 0.0

    def __sub__(self, other: Spend) -> Spend:
        return Spend(self.tokens - other.tokens, self.cost - other.cost)


@dataclass(frozen=True, slots=True)
class Budget:
    """One shared budget: a ledger key and its limits (``None``: that measure is free)."""

    key: str
    """Identifies what is counted, e.g. ``day:2026-05-01:agent:ns/name``."""
    label: str
    """What the budget is, for reasons recorded with the run ("per day", "per session...")."""
    max_tokens: int | None = None
    max_cost: float | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Which budget was reached and how much it held."""

    budget: Budget
    measure: str
    """``"tokens"`` or ``"cost"``."""
    spent: float

    def reason(self) -> str:
        if self.measure == "tokens":
            return (
                f"used {int(self.spent)} tokens, limit {self.budget.max_tokens} {self.budget.label}"
            )
        return f"cost {self.spent:.6f}, limit {self.budget.max_cost:g} {self.budget.label}"


@dataclass(slots=True)
class Reservation:
    """An admitted (or refused) estimate; :meth:`BudgetLedger.settle` replaces it by the
    real usage. Holds the keys and expiry it was charged under, so settling after midnight
    still charges the day that admitted the step."""

    budgets: tuple[Budget, ...]
    estimate: Spend
    expires_at: datetime
    refusal: Refusal | None = None
    settled: bool = field(default=False)

    @property
    def admitted(self) -> bool:
        return self.refusal is None


def next_utc_midnight(now: datetime | None = None) -> datetime:
    """When today's (UTC) day budgets end and their keys expire."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


def utc_day(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d")


class BudgetLedger(ABC):
    """Shared spending per budget key. Implementations make :meth:`reserve` atomic."""

    async def reserve(
        self, budgets: Sequence[Budget], estimate: Spend, *, now: datetime | None = None
    ) -> Reservation:
        """Admit ``estimate`` against every budget unless one is already reached.

        Admitted: the estimate is added to every budget (keys expire at the next UTC
        midnight). Refused: nothing is added and ``refusal`` names the budget reached.
        """
        expires_at = next_utc_midnight(now)
        budgets = tuple(budgets)
        refusal = await self._reserve(budgets, estimate, expires_at) if budgets else None
        return Reservation(budgets, estimate, expires_at, refusal)

    async def settle(self, reservation: Reservation, actual: Spend) -> None:
        """Replace an admitted reservation's estimate by the ``actual`` usage (once)."""
        if not reservation.admitted or reservation.settled or not reservation.budgets:
            return
        reservation.settled = True
        delta = actual - reservation.estimate
        if delta.tokens or delta.cost:
            await self._add(reservation.budgets, delta, reservation.expires_at)

    @abstractmethod
    async def spent(self, key: str) -> Spend:
        """What ``key`` holds now (zero once expired)."""

    async def aclose(self) -> None:
        """Release connections (nothing to do in memory)."""
        return None

    @abstractmethod
    async def _reserve(
        self, budgets: tuple[Budget, ...], estimate: Spend, expires_at: datetime
    ) -> Refusal | None: ...

    @abstractmethod
    async def _add(
        self, budgets: tuple[Budget, ...], delta: Spend, expires_at: datetime
    ) -> None: ...


def _reached(budget: Budget, spent: Spend) -> Refusal | None:
    if budget.max_tokens is not None and spent.tokens >= budget.max_tokens:
        return Refusal(budget, "tokens", spent.tokens)
    if budget.max_cost is not None and spent.cost >= budget.max_cost:
        return Refusal(budget, "cost", spent.cost)
    return None


class MemoryBudgetLedger(BudgetLedger):
    """The ledger of one process (the local server, tests). A lock makes check-and-add
    atomic even if runtimes in several threads share it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[Spend, datetime]] = {}

    def _get(self, key: str, now: datetime) -> Spend:
        entry = self._entries.get(key)
        if entry is None or entry[1] <= now:
            self._entries.pop(key, None)
            return Spend()
        return entry[0]

    async def spent(self, key: str) -> Spend:
        with self._lock:
            return self._get(key, datetime.now(UTC))

    async def _reserve(
        self, budgets: tuple[Budget, ...], estimate: Spend, expires_at: datetime
    ) -> Refusal | None:
        now = datetime.now(UTC)
        with self._lock:
            for budget in budgets:
                refusal = _reached(budget, self._get(budget.key, now))
                if refusal is not None:
                    return refusal
            self._add_locked(budgets, estimate, expires_at, now)
        return None

    async def _add(self, budgets: tuple[Budget, ...], delta: Spend, expires_at: datetime) -> None:
        now = datetime.now(UTC)
        with self._lock:
            self._add_locked(budgets, delta, expires_at, now)

    def _add_locked(
        self, budgets: tuple[Budget, ...], delta: Spend, expires_at: datetime, now: datetime
    ) -> None:
        if expires_at <= now:  # settling into a day that is over: that key is gone
            return
        for budget in budgets:
            held = self._get(budget.key, now)
            self._entries[budget.key] = (
                Spend(held.tokens + delta.tokens, held.cost + delta.cost),
                expires_at,
            )


# KEYS: one hash per budget (fields t = tokens, c = cost).
# ARGV: estimate tokens, estimate cost, expiry (unix seconds), then per key its token and
# cost limits (-1: none). Returns {0} when admitted (estimate added to every key), or
# {i, measure, spent as a string} for the first budget reached (nothing added).
_RESERVE_LUA = """
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 't', 'c')
  local t = tonumber(v[1] or '0')
  local c = tonumber(v[2] or '0')
  local mt = tonumber(ARGV[2 + 2 * i])
  local mc = tonumber(ARGV[3 + 2 * i])
  if mt >= 0 and t >= mt then return {i, 'tokens', tostring(t)} end
  if mc >= 0 and c >= mc then return {i, 'cost', tostring(c)} end
end
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 't', ARGV[1])
  redis.call('HINCRBYFLOAT', KEYS[i], 'c', ARGV[2])
  redis.call('EXPIREAT', KEYS[i], ARGV[3])
end
return {0}
"""

# KEYS: the hashes; ARGV: tokens delta, cost delta, expiry. Adds to every key, unless the
# expiry has passed (the day is over: a late settle must not resurrect a key forever).
_ADD_LUA = """
local tm = redis.call('TIME')
if tonumber(ARGV[3]) <= tonumber(tm[1]) then return 0 end
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 't', ARGV[1])
  redis.call('HINCRBYFLOAT', KEYS[i], 'c', ARGV[2])
  redis.call('EXPIREAT', KEYS[i], ARGV[3])
end
return 1
"""


@translate_faults("redis", also=("_reserve", "_add"))
class RedisBudgetLedger(BudgetLedger):
    """The ledger every process shares: one hash per budget under ``{prefix}:``, expiring at
    the end of its UTC day; reserve and settle are Lua scripts, so concurrent runs in any
    number of processes never lose an update or admit past a reached budget.

    Args:
        url: ``redis://host:port/db``; the client connects on first use.
        prefix: namespace of the ledger's keys.
    """

    def __init__(
        self, url: str, *, prefix: str = DEFAULT_REDIS_PREFIX, socket_timeout: float = 2.0
    ) -> None:
        self.url = url
        self.prefix = prefix
        self._redis = LoopBoundRedis(
            url,
            socket_timeout=socket_timeout,
            scripts={"reserve": _RESERVE_LUA, "add": _ADD_LUA},
        )

    @property
    def client(self) -> aioredis.Redis:
        """The Redis client of the running event loop (see :class:`LoopBoundRedis`)."""
        client: aioredis.Redis = self._redis.client
        return client

    def _script(self, name: str) -> AsyncScript:
        script: AsyncScript = self._redis.script(name)
        return script

    def redis_key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    async def spent(self, key: str) -> Spend:
        tokens, cost = await self.client.hmget(self.redis_key(key), ["t", "c"])
        return Spend(int(tokens or 0), float(cost or 0.0))

    async def _reserve(
        self, budgets: tuple[Budget, ...], estimate: Spend, expires_at: datetime
    ) -> Refusal | None:
        limits: list[str] = []
        for budget in budgets:
            limits.append(str(budget.max_tokens if budget.max_tokens is not None else -1))
            limits.append(repr(budget.max_cost) if budget.max_cost is not None else "-1")
        answer = await self._script("reserve")(
            keys=[self.redis_key(b.key) for b in budgets],
            args=[estimate.tokens, repr(estimate.cost), int(expires_at.timestamp()), *limits],
        )
        if int(answer[0]) == 0:
            return None
        return Refusal(budgets[int(answer[0]) - 1], str(answer[1]), float(answer[2]))

    async def _add(self, budgets: tuple[Budget, ...], delta: Spend, expires_at: datetime) -> None:
        await self._script("add")(
            keys=[self.redis_key(b.key) for b in budgets],
            args=[delta.tokens, repr(delta.cost), int(expires_at.timestamp())],
        )

    async def aclose(self) -> None:
        await self._redis.aclose()


def build_ledger(redis_url: str | None, *, prefix: str = DEFAULT_REDIS_PREFIX) -> BudgetLedger:
    """Redis when a URL is configured (shared by every instance), memory otherwise."""
    if redis_url:
        return RedisBudgetLedger(redis_url, prefix=prefix)
    return MemoryBudgetLedger()
