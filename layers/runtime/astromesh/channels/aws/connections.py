"""The WebSocket connection registry: who is behind a connection id, and its current run.

API Gateway gives each invocation only the connection id; what ``$connect`` established
(the tenant acted in, the API key's agents and role, the agent and session asked for, where
to post frames)
is kept here for the later ``$default`` invocations, which run on any instance. Records
live in Redis with a TTL (API Gateway ends a connection after two hours at most, or ten
idle minutes, and ``$disconnect`` is best-effort), refreshed by every message.

A connection runs one run at a time: ``{prefix}:ws:{id}:run`` holds the running run's id,
taken with ``SET NX`` so two messages arriving together cannot both start one, and
released (compare-and-delete) when the run ends.

Without Redis the registry is in memory: enough for one process (tests, a single local
container), wrong for Lambda, where ``ASTROMESH_REDIS_URL`` is required.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

from astromesh.auth import Principal, Role

DEFAULT_TTL_SECONDS = 2 * 3600
"""API Gateway's longest WebSocket connection."""
RUN_TTL_SECONDS = 15 * 60
"""A run cannot outlive the Lambda that drives it."""

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Connection:
    """What ``$connect`` learnt about a connection."""

    connection_id: str
    tenant: str
    agents: tuple[str, ...]
    endpoint: str
    """The Management API endpoint frames are posted to."""
    key_id: str | None = None
    agent: str | None = None
    """The agent named at connect time (``?agent=``); a run message may name one instead."""
    session_id: str = "default"
    connected_at: float = field(default_factory=time.time)
    role: str = Role.USER.value
    """The key's role; records written before roles existed read as ``user``, which is all a
    connection needs (it only runs agents)."""

    def principal(self) -> Principal:
        return Principal(self.tenant, frozenset(self.agents), self.key_id, Role(self.role))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> Connection:
        data = json.loads(text)
        data["agents"] = tuple(data["agents"])
        return cls(**data)


class ConnectionRegistry(ABC):
    """Connections by id, with a TTL; and each connection's running run."""

    def __init__(self, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        self.ttl_seconds = ttl_seconds

    @abstractmethod
    async def add(self, connection: Connection) -> None: ...

    @abstractmethod
    async def get(self, connection_id: str) -> Connection | None:
        """The connection (its TTL refreshed), or ``None`` once unregistered or expired."""

    @abstractmethod
    async def remove(self, connection_id: str) -> None: ...

    @abstractmethod
    async def claim_run(self, connection_id: str, run_id: str) -> str | None:
        """Make ``run_id`` the connection's run unless it has one; return the other one."""

    @abstractmethod
    async def replace_run(self, connection_id: str, run_id: str) -> None:
        """Make ``run_id`` the connection's run (the previous one is known to have ended)."""

    @abstractmethod
    async def current_run(self, connection_id: str) -> str | None: ...

    @abstractmethod
    async def release_run(self, connection_id: str, run_id: str) -> None:
        """Forget the connection's run if it is still ``run_id``."""

    async def aclose(self) -> None:  # noqa: B027 - the memory registry holds nothing
        """Release connections to the store."""


class MemoryRegistry(ConnectionRegistry):
    """One process's registry (tests; never Lambda)."""

    def __init__(self, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        super().__init__(ttl_seconds)
        self._records: dict[str, tuple[float, Connection]] = {}
        self._runs: dict[str, str] = {}

    async def add(self, connection: Connection) -> None:
        self._records[connection.connection_id] = (time.monotonic() + self.ttl_seconds, connection)

    async def get(self, connection_id: str) -> Connection | None:
        found = self._records.get(connection_id)
        if found is None or found[0] < time.monotonic():
            self._records.pop(connection_id, None)
            return None
        await self.add(found[1])
        return found[1]

    async def remove(self, connection_id: str) -> None:
        self._records.pop(connection_id, None)
        self._runs.pop(connection_id, None)

    async def claim_run(self, connection_id: str, run_id: str) -> str | None:
        current = self._runs.setdefault(connection_id, run_id)
        return None if current == run_id else current

    async def replace_run(self, connection_id: str, run_id: str) -> None:
        self._runs[connection_id] = run_id

    async def current_run(self, connection_id: str) -> str | None:
        return self._runs.get(connection_id)

    async def release_run(self, connection_id: str, run_id: str) -> None:
        if self._runs.get(connection_id) == run_id:
            del self._runs[connection_id]


class RedisRegistry(ConnectionRegistry):
    """Connections shared by every instance using the same Redis and ``prefix``."""

    def __init__(self, url: str, *, prefix: str, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        from astromesh.stores.redis_client import connect  # the redis extra; only when configured

        super().__init__(ttl_seconds)
        self.prefix = prefix
        self._client: Any = connect(url)
        self._release = self._client.register_script(_RELEASE_LUA)

    def _key(self, connection_id: str) -> str:
        return f"{self.prefix}:ws:{connection_id}"

    async def add(self, connection: Connection) -> None:
        await self._client.set(
            self._key(connection.connection_id), connection.to_json(), ex=self.ttl_seconds
        )

    async def get(self, connection_id: str) -> Connection | None:
        text = await self._client.getex(self._key(connection_id), ex=self.ttl_seconds)
        return None if text is None else Connection.from_json(text)

    async def remove(self, connection_id: str) -> None:
        await self._client.delete(self._key(connection_id), f"{self._key(connection_id)}:run")

    async def claim_run(self, connection_id: str, run_id: str) -> str | None:
        key = f"{self._key(connection_id)}:run"
        if await self._client.set(key, run_id, nx=True, ex=RUN_TTL_SECONDS):
            return None
        current = await self._client.get(key)
        return (
            current.decode() if current is not None else await self.claim_run(connection_id, run_id)
        )

    async def replace_run(self, connection_id: str, run_id: str) -> None:
        await self._client.set(f"{self._key(connection_id)}:run", run_id, ex=RUN_TTL_SECONDS)

    async def current_run(self, connection_id: str) -> str | None:
        current = await self._client.get(f"{self._key(connection_id)}:run")
        return None if current is None else str(current.decode())

    async def release_run(self, connection_id: str, run_id: str) -> None:
        await self._release(keys=[f"{self._key(connection_id)}:run"], args=[run_id])

    async def aclose(self) -> None:
        await self._client.aclose()


def open_registry(redis_url: str | None, *, prefix: str) -> ConnectionRegistry:
    return RedisRegistry(redis_url, prefix=prefix) if redis_url else MemoryRegistry()
