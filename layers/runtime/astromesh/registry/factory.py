"""Pick the registry that lives in the same store as the runs.

Registered agents must outlive any one process and be seen by all of them, so only the SQL
backends (and the in-memory one, for tests) can hold them; Redis, a cache with TTLs, cannot.
"""

from __future__ import annotations

from astromesh.errors import ConfigurationError
from astromesh.registry.base import AgentRegistry
from astromesh.stores.base import StateBackend


def registry_for(state: StateBackend) -> AgentRegistry:
    """The registry sharing ``state``'s database.

    Raises:
        ConfigurationError: ``state`` is not a durable SQL or in-memory backend.
    """
    kind = durable_kind(state)
    if kind == "memory":
        from astromesh.registry.memory import MemoryAgentRegistry

        return MemoryAgentRegistry()
    if kind == "sqlite":
        from astromesh.registry.sqlite import SQLiteAgentRegistry
        from astromesh.stores.sqlite import SQLiteBackend

        assert isinstance(state, SQLiteBackend)
        return SQLiteAgentRegistry(state)
    from astromesh.registry.postgres import PostgresAgentRegistry
    from astromesh.stores.postgres import PostgresBackend

    assert isinstance(state, PostgresBackend)
    return PostgresAgentRegistry(state)


def durable_kind(state: StateBackend) -> str:
    """``memory``, ``sqlite`` or ``postgres`` for a backend that can hold the control plane.

    Checked by module so that naming PostgreSQL does not import psycopg on a light install.

    Raises:
        ConfigurationError: any other backend (Redis).
    """
    module = type(state).__module__
    for kind in ("memory", "sqlite", "postgres"):
        if module == f"astromesh.stores.{kind}":
            return kind
    raise ConfigurationError(
        f"registered agents and API keys need a durable SQL store, not {type(state).__name__}; "
        "use the sqlite or postgres state backend (or set ASTROMESH_POSTGRES_DSN)"
    )
