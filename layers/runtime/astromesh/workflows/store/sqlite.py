"""Workflow runs in the SQLite state file (``workflow_runs``, ``workflows``), on the
backend's own worker thread."""

from __future__ import annotations

import sqlite3

from astromesh.stores._common import sortable_timestamp
from astromesh.stores.sqlite import SQLiteBackend
from astromesh.workflows.run import utcnow
from astromesh.workflows.store.base import RunRow, WorkflowRunStore


class SQLiteWorkflowRunStore(WorkflowRunStore):
    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend

    async def _insert(self, row: RunRow) -> bool:
        now = sortable_timestamp(utcnow())

        def insert(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO workflow_runs (id, tenant, workflow, status, version,"
                " created_at, updated_at, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (row.id, row.tenant, row.workflow, row.status, row.version, now, now, row.document),
            )
            return cursor.rowcount == 1

        return await self._backend.call(insert)

    async def _select(self, run_id: str) -> str | None:
        def select(conn: sqlite3.Connection) -> str | None:
            found = conn.execute(
                "SELECT document FROM workflow_runs WHERE id = ?", (run_id,)
            ).fetchone()
            return found[0] if found else None

        return await self._backend.call(select)

    async def _swap(self, expected_version: int, row: RunRow) -> bool:
        now = sortable_timestamp(utcnow())

        def swap(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE workflow_runs SET status = ?, version = ?, updated_at = ?, document = ?"
                " WHERE id = ? AND version = ?",
                (row.status, row.version, now, row.document, row.id, expected_version),
            )
            return cursor.rowcount == 1

        return await self._backend.call(swap)

    async def _scan(self, tenant: str | None, statuses: list[str] | None, limit: int) -> list[str]:
        clauses, params = _filters(tenant, statuses)

        def scan(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                f"SELECT document FROM workflow_runs {clauses} ORDER BY created_at DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
            return [r[0] for r in rows]

        return await self._backend.call(scan)

    async def put_workflow(self, tenant: str, name: str, document: str) -> None:
        now = sortable_timestamp(utcnow())
        await self._backend.call(
            lambda conn: conn.execute(
                "INSERT INTO workflows (tenant, name, document, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (tenant, name) DO UPDATE SET document = excluded.document,"
                " updated_at = excluded.updated_at",
                (tenant, name, document, now),
            )
        )

    async def get_workflow(self, tenant: str, name: str) -> str | None:
        def get(conn: sqlite3.Connection) -> str | None:
            found = conn.execute(
                "SELECT document FROM workflows WHERE tenant = ? AND name = ?", (tenant, name)
            ).fetchone()
            return found[0] if found else None

        return await self._backend.call(get)

    async def list_workflows(self, tenant: str) -> dict[str, str]:
        def listed(conn: sqlite3.Connection) -> dict[str, str]:
            rows = conn.execute(
                "SELECT name, document FROM workflows WHERE tenant = ? ORDER BY name", (tenant,)
            ).fetchall()
            return {name: doc for name, doc in rows}

        return await self._backend.call(listed)


def _filters(tenant: str | None, statuses: list[str] | None, mark: str = "?") -> tuple[str, list]:
    """A ``WHERE`` clause and its parameters for the scan's filters."""
    clauses: list[str] = []
    params: list[str] = []
    if tenant is not None:
        clauses.append(f"tenant = {mark}")
        params.append(tenant)
    if statuses:
        clauses.append(f"status IN ({', '.join([mark] * len(statuses))})")
        params.extend(statuses)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params
