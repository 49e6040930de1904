"""Redis stores: the hot tier, shared by every Lambda instance and worker.

Layout, all under one ``prefix`` so tenants of a Redis (or test runs) never collide:

- ``{prefix}:run:{id}``: the RunState JSON without its growing lists, with a TTL refreshed
  at every write; ``{prefix}:items:{id}:messages`` (``:steps``, ``:spans``): those lists, one
  JSON element per entry, RPUSHed by each save (:mod:`astromesh.stores._journal`), same TTL.
- ``{prefix}:runs``, ``{prefix}:runs:agent:{agent}``, ``{prefix}:runs:session:{session_id}``:
  sorted sets of run ids scored by ``created_at``, the indexes ``list_runs`` walks newest
  first. They expire with their newest member; ids whose document has expired are dropped
  lazily when a listing meets them.
- ``{prefix}:durable_owed``: a set of run ids whose final state the tiered backend could not
  yet copy to PostgreSQL (no TTL: it empties itself as the copies are written).
- ``{prefix}:hist:{session key}``: a list of message JSON, RPUSHed, with a TTL.
- ``{prefix}:usage:run:{id}``: a finished run's usage ledger entries (a JSON list), and
  ``{prefix}:usage:tenant:{tenant}``: a sorted set of those run ids scored by the run's start,
  the index ``GET /v1/usage`` reads a window of. No TTL: spending is kept like an account,
  not like a cache (behind the tiered backend, PostgreSQL keeps it and Redis writes none).

Writes of a run go through Lua scripts so that the version check, the write and the index
update happen as one atomic step: two writers holding the same version can never both win.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from astromesh.errors import ConflictError, NotFoundError
from astromesh.models.types import Message
from astromesh.runs.state import ActionResult, RunState
from astromesh.stores._common import (
    adopt,
    as_utc,
    conflict,
    created_copy,
    saved_copy,
)
from astromesh.stores._journal import (
    LISTS,
    Encoded,
    decode,
    encode,
    parse_messages,
    pending_write,
    remember,
)
from astromesh.stores.base import (
    HistoryStore,
    PendingCheckpoint,
    RunStore,
    SessionKey,
    StateBackend,
    UsageStore,
)
from astromesh.stores.faults import translate_faults, translated
from astromesh.stores.redis_client import connect
from astromesh.telemetry.usage import UsageEntry, UsageQuery, entries_of

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = ["RedisBackend", "RedisHistoryStore", "RedisRunStore", "RedisUsageStore"]

logger = logging.getLogger(__name__)

# KEYS: the run's key, its three item lists (messages, steps, spans), then the index sorted
# sets. ARGV: head document, ttl (0 = none), score, run id, the version the writer read ('' to
# create), then for each item list: 'a' (append) or 'r' (rewrite), a count, that many bodies.
# Returns {1, new version} when written, {0, 0} when a create finds the id taken, {-1, 0} when
# the run to save does not exist, {-2, stored version} when another writer got there first.
_WRITE_LUA = """
local ttl = tonumber(ARGV[2])
local stored = 0
if ARGV[5] == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0} end
else
  local current = redis.call('GET', KEYS[1])
  if not current then return {-1, 0} end
  stored = tonumber(cjson.decode(current)['version'])
  if stored ~= tonumber(ARGV[5]) then return {-2, stored} end
end
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
local at = 6
for k = 2, 4 do
  local mode, count = ARGV[at], tonumber(ARGV[at + 1])
  at = at + 2
  if mode == 'r' then redis.call('DEL', KEYS[k]) end
  local first = at
  while first < at + count do
    local last = math.min(first + 999, at + count - 1)
    redis.call('RPUSH', KEYS[k], unpack(ARGV, first, last))
    first = last + 1
  end
  at = at + count
  if ttl > 0 then redis.call('EXPIRE', KEYS[k], ttl) end
end
for i = 5, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[3], ARGV[4])
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
return {1, stored + 1}
"""


class RedisBackend(StateBackend):
    """Runs and history in Redis, every key expiring ``ttl_seconds`` after its last write.

    Args:
        url: a ``redis://`` or ``rediss://`` URL (database number in the path).
        ttl_seconds: lifetime of run documents, indexes and histories; ``None`` or ``0``
            keeps them until deleted (use that only when Redis is the durable store).
        prefix: namespace of every key this backend touches.
    """

    def __init__(
        self, url: str, *, ttl_seconds: int | None = 86400, prefix: str = "astromesh"
    ) -> None:
        if ttl_seconds is not None and ttl_seconds < 0:
            raise ValueError("ttl_seconds must be positive, 0 or None")
        self.url = url
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds or 0
        # The client connects on first command, so building a backend costs nothing.
        self.client: aioredis.Redis = connect(url, decode_responses=True)
        self.runs = RedisRunStore(self)
        self.history = RedisHistoryStore(self)
        self.usage = RedisUsageStore(self)
        self.records_usage = True
        """Whether finished runs' usage is written here (the tiered backend turns it off:
        its durable tier keeps the ledger)."""

    def key(self, *parts: str) -> str:
        """``{prefix}:part:part...``: every key name goes through here."""
        return ":".join((self.prefix, *parts))

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


@translate_faults("redis")
class RedisRunStore(RunStore):
    """Run documents as JSON strings; CAS and index maintenance in Lua."""

    def __init__(self, backend: RedisBackend) -> None:
        self._backend = backend
        self._write: AsyncScript = backend.client.register_script(_WRITE_LUA)

    def _run_key(self, run_id: str) -> str:
        return self._backend.key("run", run_id)

    def _item_keys(self, run_id: str) -> list[str]:
        return [self._backend.key("items", run_id, name) for name in LISTS]

    def _index_keys(self, run: RunState) -> list[str]:
        return [
            self._backend.key("runs"),
            self._backend.key("runs", "agent", run.agent),
            self._backend.key("runs", "session", run.session_id),
        ]

    def _write_call(
        self, written: RunState, encoded: Encoded, replacing: int | None
    ) -> tuple[list[str], list[Any]]:
        """The KEYS and ARGV of :data:`_WRITE_LUA` for one write."""
        keys = [self._run_key(written.id), *self._item_keys(written.id)]
        args: list[Any] = [
            encoded.head,
            self._backend.ttl_seconds,
            as_utc(written.created_at).timestamp(),
            written.id,
            "" if replacing is None else replacing,
        ]
        for write in encoded.lists:
            args += ["r" if write.rewrite else "a", len(write.bodies), *write.bodies]
        return [*keys, *self._index_keys(written)], args

    async def create(self, run: RunState) -> RunState:
        written = created_copy(run)
        encoded = encode(written, self, replacing=None)
        keys, args = self._write_call(written, encoded, None)
        created, _ = await self._write(keys=keys, args=args)
        if not created:
            raise ConflictError(f"run {run.id!r} already exists")
        await self._backend.usage.put(written)
        remember(run, encoded.snapshot)
        return adopt(run, written)

    async def get(self, run_id: str) -> RunState:
        [found] = await self._read([run_id], store=self)
        if found is None:
            raise NotFoundError(f"run {run_id!r} not found")
        return found

    async def _read(
        self, run_ids: Sequence[str], *, store: object | None = None
    ) -> list[RunState | None]:
        """The runs of ``run_ids`` (``None`` where expired), each head read with its item
        lists in one ``MULTI``, so a concurrent save is seen whole or not at all."""
        async with self._backend.client.pipeline(transaction=True) as pipe:
            for run_id in run_ids:
                pipe.get(self._run_key(run_id))
                for key in self._item_keys(run_id):
                    pipe.lrange(key, 0, -1)
            replies = await pipe.execute()
        found: list[RunState | None] = []
        for at in range(0, len(replies), 1 + len(LISTS)):
            head, *lists = replies[at : at + 1 + len(LISTS)]
            if head is None:
                found.append(None)
                continue
            rows = [
                (name, body) for name, bodies in zip(LISTS, lists, strict=True) for body in bodies
            ]
            found.append(decode(head, rows, store=store))
        return found

    async def save(self, run: RunState) -> RunState:
        return await self.checkpoint(run)

    async def checkpoint(self, run: RunState, results: Sequence[ActionResult] = ()) -> RunState:
        """The step's results and the run's compare-and-swap in one ``MULTI`` round trip.

        Results written beside a run whose swap then loses are harmless: they are keyed by
        call id, and the winner (a cancel) finalizes with the same calls.
        """
        written = saved_copy(run)
        encoded = encode(written, self, replacing=run.version)
        keys, args = self._write_call(written, encoded, run.version)
        await self._swap(run.id, run.version, keys, args, _result_documents(results))
        await self._backend.usage.put(written)
        remember(run, encoded.snapshot)
        return adopt(run, written)

    async def begin_checkpoint(
        self, run: RunState, results: Sequence[ActionResult] = ()
    ) -> PendingCheckpoint:
        """:meth:`checkpoint` with its round trip in a task of its own, started once
        everything it sends is encoded (here, before returning).

        A run that ended is written whole before this returns: its usage entries are read
        from it after the write, and the step loop waits for its final save anyway.
        """
        if run.status.is_terminal:
            return await super().begin_checkpoint(run, results)
        written = saved_copy(run)
        encoded = encode(written, self, replacing=run.version)
        keys, args = self._write_call(written, encoded, run.version)
        swap = self._swap(run.id, run.version, keys, args, _result_documents(results))
        write = asyncio.ensure_future(translated("redis", swap))

        return pending_write(run, written, encoded, write)

    async def _swap(
        self, run_id: str, version: int, keys: list[str], args: list[Any], documents: dict[str, str]
    ) -> None:
        """The results' ``HSET`` and the compare-and-swap script, in one ``MULTI`` when there
        are results; only encoded values in, so it can run while the run changes."""
        if documents:
            name = self._backend.key("results", run_id)
            async with self._backend.client.pipeline(transaction=True) as pipe:
                pipe.hset(name, mapping=documents)
                if self._backend.ttl_seconds:
                    pipe.expire(name, self._backend.ttl_seconds)
                await self._write(keys=keys, args=args, client=pipe)
                status, stored = (await pipe.execute())[-1]
        else:
            status, stored = await self._write(keys=keys, args=args)
        if status == -1:
            raise NotFoundError(f"run {run_id!r} not found")
        if status == -2:
            raise conflict(run_id, int(stored), version)

    async def owe_durable(self, run_id: str) -> None:
        """Remember that ``run_id``'s final state is not in the durable tier yet."""
        await self._backend.client.sadd(self._backend.key("durable_owed"), run_id)

    async def take_owed_durable(self, count: int) -> list[str]:
        """Take up to ``count`` run ids owed to the durable tier (the caller writes them or
        owes them again)."""
        taken = await self._backend.client.spop(self._backend.key("durable_owed"), count)
        return list(taken or [])

    async def list_runs(
        self, *, agent: str | None = None, session_id: str | None = None, limit: int = 50
    ) -> list[RunState]:
        if limit <= 0:
            return []
        if agent is not None:
            index = self._backend.key("runs", "agent", agent)
        elif session_id is not None:
            index = self._backend.key("runs", "session", session_id)
        else:
            index = self._backend.key("runs")
        client = self._backend.client
        page = max(limit, 20)
        start = 0
        found: list[RunState] = []
        seen: set[str] = set()
        expired: list[str] = []
        while len(found) < limit:
            ids: list[str] = await client.zrange(index, start, start + page - 1, desc=True)
            if not ids:
                break
            start += page
            for run_id, run in zip(ids, await self._read(ids), strict=True):
                if run is None:
                    expired.append(run_id)
                    continue
                if run_id in seen:  # ranks shift when another client adds runs meanwhile
                    continue
                seen.add(run_id)
                # The index narrows by one field; the other filter is checked on the document.
                if (agent is None or run.agent == agent) and (
                    session_id is None or run.session_id == session_id
                ):
                    found.append(run)
                    if len(found) == limit:
                        break
        if expired:
            await client.zrem(index, *expired)
        return found

    async def put_result(self, run_id: str, result: ActionResult) -> None:
        name = self._backend.key("results", run_id)
        async with self._backend.client.pipeline(transaction=True) as pipe:
            pipe.hset(name, result.call_id, result.model_dump_json())
            if self._backend.ttl_seconds:
                pipe.expire(name, self._backend.ttl_seconds)
            await pipe.execute()

    async def get_results(self, run_id: str, call_ids: Sequence[str]) -> dict[str, ActionResult]:
        wanted = list(dict.fromkeys(call_ids))
        if not wanted:
            return {}
        raw: list[str | None] = await self._backend.client.hmget(
            self._backend.key("results", run_id), wanted
        )
        return {
            call_id: ActionResult.model_validate_json(doc)
            for call_id, doc in zip(wanted, raw, strict=True)
            if doc is not None
        }


@translate_faults("redis")
class RedisUsageStore(UsageStore):
    """Each finished run's entries as one JSON list, indexed per tenant by start time."""

    def __init__(self, backend: RedisBackend) -> None:
        self._backend = backend

    async def put(self, run: RunState) -> None:
        """Replace ``run``'s entries when it is stored ended (after the run's own write: a
        process dying in between leaves that one run out of the ledger)."""
        if not run.status.is_terminal or not self._backend.records_usage:
            return
        found = entries_of(run)
        document = json.dumps([_entry_json(e) for e in found])
        async with self._backend.client.pipeline(transaction=True) as pipe:
            pipe.set(self._backend.key("usage", "run", run.id), document)
            pipe.zadd(
                self._backend.key("usage", "tenant", run.tenant),
                {run.id: found[0].started_at.timestamp()},
            )
            await pipe.execute()

    async def entries(self, query: UsageQuery) -> list[UsageEntry]:
        client = self._backend.client
        ids: list[str] = await client.zrangebyscore(
            self._backend.key("usage", "tenant", query.tenant),
            query.since.timestamp(),
            f"({query.until.timestamp()}",
        )
        found: list[UsageEntry] = []
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            docs: list[str | None] = await client.mget(
                [self._backend.key("usage", "run", i) for i in batch]
            )
            for doc in docs:
                for item in json.loads(doc) if doc else ():
                    entry = UsageEntry(
                        **{**item, "started_at": datetime.fromisoformat(item["started_at"])}
                    )
                    if query.matches(entry):
                        found.append(entry)
        return found


def _entry_json(entry: UsageEntry) -> dict[str, Any]:
    return {
        **{name: getattr(entry, name) for name in UsageEntry.__slots__},
        "started_at": entry.started_at.isoformat(),
    }


@translate_faults("redis")
class RedisHistoryStore(HistoryStore):
    """Each session's messages as one Redis list, oldest first."""

    def __init__(self, backend: RedisBackend) -> None:
        self._backend = backend

    def _key(self, key: SessionKey) -> str:
        return self._backend.key("hist", key.as_string())

    async def append(self, key: SessionKey, messages: list[Message]) -> None:
        if not messages:
            return
        name = self._key(key)
        async with self._backend.client.pipeline(transaction=True) as pipe:
            pipe.rpush(name, *(m.model_dump_json() for m in messages))
            if self._backend.ttl_seconds:
                pipe.expire(name, self._backend.ttl_seconds)
            await pipe.execute()

    async def read(self, key: SessionKey, limit: int | None = None) -> list[Message]:
        if limit is not None and limit <= 0:
            return []
        start = 0 if limit is None else -limit
        raw: list[str] = await self._backend.client.lrange(self._key(key), start, -1)
        return parse_messages(raw)

    async def clear(self, key: SessionKey) -> int:
        name = self._key(key)
        async with self._backend.client.pipeline(transaction=True) as pipe:
            pipe.llen(name)
            pipe.delete(name)
            count, _deleted = await pipe.execute()
        return int(count)


def _result_documents(results: Sequence[ActionResult]) -> dict[str, str]:
    """The results' JSON by call id (the ``HSET`` mapping of a checkpoint)."""
    return {r.call_id: r.model_dump_json() for r in results}
