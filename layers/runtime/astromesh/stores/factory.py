"""Build a :class:`StateBackend` from configuration.

Redis and PostgreSQL clients are optional extras (``astromesh[redis]``,
``astromesh[postgres]``): their modules are imported only when that kind is asked for, so the
light install (every Lambda function, the CLI) runs with SQLite or memory alone, and a
missing extra is reported as a configuration problem rather than an ``ImportError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from astromesh.errors import ConfigurationError
from astromesh.stores.base import StateBackend

__all__ = ["DEFAULT_SQLITE_PATH", "BackendKind", "open_backend"]

BackendKind = Literal["memory", "sqlite", "redis", "postgres"]

DEFAULT_SQLITE_PATH = Path(".astromesh") / "state.db"
"""Where ``astromesh dev`` keeps its state when nothing else is configured (project-relative)."""

_KINDS: tuple[str, ...] = ("memory", "sqlite", "redis", "postgres")


def open_backend(
    kind: str,
    *,
    sqlite_path: str | Path = DEFAULT_SQLITE_PATH,
    redis_url: str | None = None,
    redis_prefix: str = "astromesh",
    postgres_dsn: str | None = None,
    ttl_seconds: int | None = 86400,
) -> StateBackend:
    """Return the backend named by ``kind``; connections open on first use.

    Args:
        kind: ``"memory"``, ``"sqlite"``, ``"redis"`` or ``"postgres"``.
        sqlite_path: database file for ``"sqlite"`` (``":memory:"`` allowed).
        redis_url: required for ``"redis"``; with ``postgres_dsn`` as well, Redis is the
            hot tier and every finished run is also written to PostgreSQL.
        redis_prefix: namespace of the Redis keys.
        postgres_dsn: required for ``"postgres"``.
        ttl_seconds: lifetime of Redis keys (``None`` or ``0``: no expiry).

    Raises:
        ConfigurationError: unknown kind, missing URL/DSN, or the extra is not installed.
    """
    if kind == "memory":
        from astromesh.stores.memory import MemoryBackend

        return MemoryBackend()
    if kind == "sqlite":
        from astromesh.stores.sqlite import SQLiteBackend

        return SQLiteBackend(sqlite_path)
    if kind == "redis":
        if not redis_url:
            raise ConfigurationError("the redis state backend needs a URL (redis_url)")
        try:
            from astromesh.stores.redis import RedisBackend
        except ImportError as exc:
            raise _missing_extra("redis", exc) from exc
        hot = RedisBackend(redis_url, ttl_seconds=ttl_seconds, prefix=redis_prefix)
        if not postgres_dsn:
            return hot
        # With a DSN as well, Redis is the hot tier and finished runs go to PostgreSQL.
        from astromesh.stores.tiered import TieredBackend

        return TieredBackend(hot, open_backend("postgres", postgres_dsn=postgres_dsn))
    if kind == "postgres":
        if not postgres_dsn:
            raise ConfigurationError("the postgres state backend needs a DSN (postgres_dsn)")
        try:
            from astromesh.stores.postgres import PostgresBackend
        except ImportError as exc:
            raise _missing_extra("postgres", exc) from exc
        return PostgresBackend(postgres_dsn)
    raise ConfigurationError(
        f"unknown state backend {kind!r}; expected one of: {', '.join(_KINDS)}"
    )


def _missing_extra(extra: str, exc: ImportError) -> ConfigurationError:
    return ConfigurationError(
        f"the {extra} state backend needs the '{extra}' extra "
        f"(pip install 'astromesh[{extra}]'): {exc}"
    )
