"""A redis.asyncio client with its Lua scripts, for whichever event loop is running.

redis-py's asyncio connections belong to the loop that opened them, so a component used
from a new loop (``asyncio.run`` per Lambda invocation) needs a new client. The circuit
breaker and the budget ledger both keep one of these instead of each re-deriving it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any


class LoopBoundRedis:
    """Connects on first use (``redis`` is imported only then) and again for a new loop."""

    def __init__(self, url: str, *, socket_timeout: float, scripts: Mapping[str, str]) -> None:
        self.url = url
        self._socket_timeout = socket_timeout
        self._sources = dict(scripts)
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, Any] = {}

    @property
    def client(self) -> Any:
        """The ``redis.asyncio.Redis`` client of the running loop."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import redis.asyncio as aioredis

            self._client = aioredis.from_url(
                self.url,
                decode_responses=True,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._socket_timeout,
            )
            self._loop = loop
            self._scripts = {
                name: self._client.register_script(source) for name, source in self._sources.items()
            }
        return self._client

    def script(self, name: str) -> Any:
        """The registered script ``name``, on the running loop's client."""
        _ = self.client
        return self._scripts[name]

    async def aclose(self) -> None:
        """Close the client if it belongs to the running loop (another loop's is dropped)."""
        client, loop = self._client, self._loop
        self._client = self._loop = None
        self._scripts = {}
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()
