"""Connection failures of the state servers, mapped once to :class:`StateUnavailable`.

Redis and PostgreSQL each raise their own connection errors (``redis.ConnectionError``,
``redis.TimeoutError``, ``psycopg.OperationalError``, ``psycopg_pool.PoolTimeout``, a bare
``OSError`` from the socket). Left alone they reach the REST layer as a ``500`` with no hint
that retrying would work; every store method of the network backends is wrapped here instead,
so everything above the stores (executor, channels, error handlers) knows one class.

Only *connection* faults are translated: a failed query (a constraint, bad SQL, a Lua error)
is a bug or a conflict and keeps its own exception.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from astromesh.errors import StateUnavailable

__all__ = ["connection_faults", "translate_faults", "translated"]

T = TypeVar("T")


@functools.cache
def connection_faults() -> tuple[type[BaseException], ...]:
    """The exception classes that mean "the server is not there" (the installed extras' ones)."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        from redis import exceptions as redis_exc

        found += [redis_exc.ConnectionError, redis_exc.TimeoutError]
    except ImportError:  # the redis extra is not installed
        pass
    try:
        import psycopg

        found.append(psycopg.OperationalError)  # PoolTimeout is one too
    except ImportError:  # the postgres extra is not installed
        pass
    return tuple(found)


async def translated(store: str, write: Awaitable[T]) -> T:
    """``await write``, a connection fault raised as :class:`StateUnavailable` (naming
    ``store``): for a write run as a task of its own, outside the decorated methods (a
    checkpoint written behind the step loop)."""
    try:
        return await write
    except StateUnavailable:
        raise
    except connection_faults() as exc:
        raise StateUnavailable(store, exc) from exc


def _wrap(store: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except StateUnavailable:
            raise
        except connection_faults() as exc:
            raise StateUnavailable(store, exc) from exc

    return wrapper


def translate_faults(store: str, *, also: tuple[str, ...] = ()) -> Callable[[type[T]], type[T]]:
    """Class decorator: every public coroutine method defined on the class (and the private
    ones named in ``also``, where a base class's public method calls them) raises
    :class:`StateUnavailable` (naming ``store``) for a connection fault."""

    def decorate(cls: type[T]) -> type[T]:
        for name, member in list(vars(cls).items()):
            wanted = not name.startswith("_") or name in also
            if wanted and inspect.iscoroutinefunction(member):
                setattr(cls, name, _wrap(store, member))
        return cls

    return decorate
