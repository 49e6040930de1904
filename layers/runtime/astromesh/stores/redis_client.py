"""A redis.asyncio client with its Lua scripts, for whichever event loop is running.

redis-py's asyncio connections belong to the loop that opened them, so a component used
from a new loop (``asyncio.run`` per Lambda invocation) needs a new client. The circuit
breaker and the budget ledger both keep one of these instead of each re-deriving it.

Every Redis client of the runtime is made by :func:`connect`, so each one survives a Redis
restart the same way: pooled connections are health-checked when idle and a command that
meets a dead connection reconnects and is retried with a short backoff, instead of failing
an already-acknowledged message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

HEALTH_CHECK_SECONDS = 5
"""A pooled connection idle this long is PINGed before use (a restart closed it meanwhile)."""

RETRIES = 3
"""Attempts after the first when a command meets a connection error (a restart, a failover).
With the backoff below a Redis that is really down fails a command in well under a second,
so callers answer ``503`` quickly instead of hanging."""


def connect(
    url: str,
    *,
    decode_responses: bool = False,
    socket_timeout: float | None = 5.0,
    socket_connect_timeout: float = 2.0,
) -> Any:
    """A ``redis.asyncio.Redis`` for ``url`` that checks idle connections and retries
    connection errors (``from_url`` alone retries nothing, so the first command on each
    pooled connection after a restart failed).

    Only connection errors are retried, not timeouts: a command that timed out may have run
    (``SET NX`` of a claim), and running it again would report the first attempt's claim as
    somebody else's.
    """
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    return aioredis.from_url(
        url,
        decode_responses=decode_responses,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_connect_timeout,
        socket_keepalive=True,
        health_check_interval=HEALTH_CHECK_SECONDS,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES, (RedisConnectionError,)),
        retry_on_error=[RedisConnectionError],
    )


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
            self._client = connect(
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
