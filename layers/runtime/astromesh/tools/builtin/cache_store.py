"""``cache_store``: upstream's key-value cache between tool calls, on the runtime's shared state.

Arguments as upstream's: ``action`` (``get``, ``set``, ``delete``), ``key``, ``value``. Upstream
keeps a dict in the run's context; here values live where the runtime's other shared
counters live (Redis when a Redis URL is configured, so every instance and every Lambda
container sees them; this process's memory otherwise), so a value set in one run is there for
the next run of the same agent.

Everything is namespaced per tenant and agent (``{tenant}:{agent}``): an agent reads and
writes only its own keys, whatever key it asks for. Bounded, because a model can loop: keys
up to :data:`MAX_KEY_CHARS`, values (as JSON) up to ``config.max_value_bytes`` (64 KiB),
``config.max_keys`` (1,000) per namespace (a ``set`` of a new key past that is refused), and
every namespace expires ``config.ttl_seconds`` (one day) after its last write.
"""

from __future__ import annotations

import asyncio
import json
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any

from pydantic import Field

from astromesh.errors import ToolError
from astromesh.stores.redis_client import LoopBoundRedis
from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin._common import BuiltinConfig

MAX_KEY_CHARS = 200
DEFAULT_PREFIX = "astromesh:toolcache"

_SET_LUA = """
local exists = redis.call('HEXISTS', KEYS[1], ARGV[1])
if exists == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""


class CacheStoreConfig(BuiltinConfig):
    max_value_bytes: int = Field(64 * 1024, ge=1, le=1024 * 1024)
    max_keys: int = Field(1000, ge=1, le=100_000)
    ttl_seconds: int = Field(86_400, ge=1, le=30 * 86_400)


class ToolCache(ABC):
    """Where ``cache_store`` keeps values: one map per namespace."""

    @abstractmethod
    async def get(self, namespace: str, key: str) -> str | None: ...

    @abstractmethod
    async def set(self, namespace: str, key: str, value: str, *, max_keys: int, ttl: int) -> bool:
        """Store; ``False`` when ``key`` is new and the namespace already holds ``max_keys``."""

    @abstractmethod
    async def delete(self, namespace: str, key: str) -> None: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook, memory holds nothing
        """Release connections."""


class MemoryToolCache(ToolCache):
    """This process only (a dev server, tests); namespaces expire like Redis hashes."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, OrderedDict[str, str]]] = {}
        self._lock = asyncio.Lock()

    def _live(self, namespace: str) -> OrderedDict[str, str] | None:
        found = self._data.get(namespace)
        if found is None:
            return None
        if found[0] < time.monotonic():
            del self._data[namespace]
            return None
        return found[1]

    async def get(self, namespace: str, key: str) -> str | None:
        values = self._live(namespace)
        return None if values is None else values.get(key)

    async def set(self, namespace: str, key: str, value: str, *, max_keys: int, ttl: int) -> bool:
        async with self._lock:
            values = self._live(namespace) or OrderedDict()
            if key not in values and len(values) >= max_keys:
                return False
            values[key] = value
            self._data[namespace] = (time.monotonic() + ttl, values)
            return True

    async def delete(self, namespace: str, key: str) -> None:
        values = self._live(namespace)
        if values is not None:
            values.pop(key, None)


class RedisToolCache(ToolCache):
    """Shared by every instance: one hash per namespace under ``{prefix}:``; a set is one
    Lua script, so the key bound holds under concurrent runs."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self._redis = LoopBoundRedis(url, socket_timeout=2.0, scripts={"set": _SET_LUA})

    def _key(self, namespace: str) -> str:
        return f"{self.prefix}:{namespace}"

    async def get(self, namespace: str, key: str) -> str | None:
        value: str | None = await self._redis.client.hget(self._key(namespace), key)
        return value

    async def set(self, namespace: str, key: str, value: str, *, max_keys: int, ttl: int) -> bool:
        stored = await self._redis.script("set")(
            keys=[self._key(namespace)], args=[key, value, max_keys, ttl]
        )
        return bool(stored)

    async def delete(self, namespace: str, key: str) -> None:
        await self._redis.client.hdel(self._key(namespace), key)

    async def aclose(self) -> None:
        await self._redis.aclose()


def build_tool_cache(redis_url: str | None, *, prefix: str = DEFAULT_PREFIX) -> ToolCache:
    """Redis when a URL is configured (shared by every instance), memory otherwise."""
    return RedisToolCache(redis_url, prefix=prefix) if redis_url else MemoryToolCache()


class CacheStoreTool(Tool):
    """Gets, sets and deletes values in the calling agent's own namespace."""

    def __init__(
        self,
        name: str = "cache_store",
        description: str = "",
        *,
        cache: ToolCache,
        config: CacheStoreConfig | None = None,
    ) -> None:
        self.cache = cache
        self.config = config or CacheStoreConfig()
        super().__init__(
            name=name,
            description=description
            or "Key-value cache for sharing data between tool calls and runs.",
            parameters={
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["get", "set", "delete"]},
                    "key": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
                    "value": {"description": "Value to store (for set)"},
                },
                "required": ["action", "key"],
                "additionalProperties": False,
            },
        )

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        action, key = arguments["action"], arguments["key"]
        namespace = f"{context.namespace}:{context.agent}"
        if action == "get":
            raw = await self.cache.get(namespace, key)
            return {"key": key, "found": raw is not None, "value": _load(raw)}
        if action == "delete":
            await self.cache.delete(namespace, key)
            return {"key": key, "deleted": True}
        encoded = json.dumps(arguments.get("value"), ensure_ascii=False, default=str)
        if len(encoded.encode()) > self.config.max_value_bytes:
            raise ToolError(
                f"value is {len(encoded.encode())} bytes as JSON; at most"
                f" {self.config.max_value_bytes}"
            )
        stored = await self.cache.set(
            namespace,
            key,
            encoded,
            max_keys=self.config.max_keys,
            ttl=self.config.ttl_seconds,
        )
        if not stored:
            raise ToolError(
                f"the cache holds {self.config.max_keys} keys already; delete one first"
            )
        return {"key": key, "stored": True}


def _load(raw: str | None) -> Any:
    return None if raw is None else json.loads(raw)
