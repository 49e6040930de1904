"""Pick the key store that lives in the same database as the runs (see ``registry.factory``)."""

from __future__ import annotations

from astromesh.auth.base import KeyStore
from astromesh.registry.factory import durable_kind
from astromesh.stores.base import StateBackend


def key_store_for(state: StateBackend) -> KeyStore:
    """The key store sharing ``state``'s database.

    Raises:
        ConfigurationError: ``state`` is not a durable SQL or in-memory backend.
    """
    kind = durable_kind(state)
    if kind == "memory":
        from astromesh.auth.memory import MemoryKeyStore

        return MemoryKeyStore()
    if kind == "sqlite":
        from astromesh.auth.sqlite import SQLiteKeyStore
        from astromesh.stores.sqlite import SQLiteBackend

        assert isinstance(state, SQLiteBackend)
        return SQLiteKeyStore(state)
    from astromesh.auth.postgres import PostgresKeyStore
    from astromesh.stores.postgres import PostgresBackend

    assert isinstance(state, PostgresBackend)
    return PostgresKeyStore(state)
