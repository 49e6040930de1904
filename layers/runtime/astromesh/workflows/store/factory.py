"""The workflow run store for a state backend: the same database as its agent runs."""

from __future__ import annotations

from weakref import WeakKeyDictionary

from astromesh.stores.base import StateBackend
from astromesh.workflows.store.base import WorkflowRunStore

_OPENED: WeakKeyDictionary[StateBackend, WorkflowRunStore] = WeakKeyDictionary()
"""One store per backend (the in-memory one holds the runs themselves)."""


def open_workflow_store(backend: StateBackend) -> WorkflowRunStore:
    """See :func:`_open`; the same store for the same backend."""
    store = _OPENED.get(backend)
    if store is None:
        store = _OPENED[backend] = _open(backend)
    return store


def _open(backend: StateBackend) -> WorkflowRunStore:
    """The store on ``backend``'s own connection (SQLite file, PostgreSQL pool, Redis
    client); with Redis in front of PostgreSQL, on PostgreSQL, which keeps runs for as long
    as they wait (the hot tier's keys expire)."""
    durable = getattr(backend, "durable_backend", None)
    if durable is not None:
        backend = durable
    kind = type(backend).__name__
    if kind == "SQLiteBackend":
        from astromesh.workflows.store.sqlite import SQLiteWorkflowRunStore

        return SQLiteWorkflowRunStore(backend)  # type: ignore[arg-type]
    if kind == "PostgresBackend":
        from astromesh.workflows.store.postgres import PostgresWorkflowRunStore

        return PostgresWorkflowRunStore(backend)  # type: ignore[arg-type]
    if kind == "RedisBackend":
        from astromesh.workflows.store.redis import RedisWorkflowRunStore

        return RedisWorkflowRunStore(backend)  # type: ignore[arg-type]
    from astromesh.workflows.store.memory import MemoryWorkflowRunStore

    return MemoryWorkflowRunStore()
