"""Workflow runs in PostgreSQL (``workflow_runs``, ``workflows``), through the backend's
pool; CAS is ``UPDATE ... WHERE id = %s AND version = %s``."""

from __future__ import annotations

from astromesh.stores.postgres import PostgresBackend
from astromesh.workflows.run import utcnow
from astromesh.workflows.store.base import RunRow, WorkflowRunStore
from astromesh.workflows.store.sqlite import _filters


class PostgresWorkflowRunStore(WorkflowRunStore):
    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend

    async def _insert(self, row: RunRow) -> bool:
        now = utcnow()
        _, count = await self._backend.execute_count(
            "INSERT INTO workflow_runs (id, tenant, workflow, status, version, created_at,"
            " updated_at, document) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
            " ON CONFLICT (id) DO NOTHING",
            (row.id, row.tenant, row.workflow, row.status, row.version, now, now, row.document),
        )
        return count == 1

    async def _select(self, run_id: str) -> str | None:
        rows = await self._backend.execute(
            "SELECT document::text FROM workflow_runs WHERE id = %s", (run_id,)
        )
        return rows[0][0] if rows else None

    async def _swap(self, expected_version: int, row: RunRow) -> bool:
        _, count = await self._backend.execute_count(
            "UPDATE workflow_runs SET status = %s, version = %s, updated_at = %s,"
            " document = %s::jsonb WHERE id = %s AND version = %s",
            (row.status, row.version, utcnow(), row.document, row.id, expected_version),
        )
        return count == 1

    async def _scan(self, tenant: str | None, statuses: list[str] | None, limit: int) -> list[str]:
        where, params = _filters(tenant, statuses, "%s")
        rows = await self._backend.execute(
            f"SELECT document::text FROM workflow_runs {where} ORDER BY created_at DESC LIMIT %s",
            (*params, limit),
        )
        return [r[0] for r in rows]

    async def put_workflow(self, tenant: str, name: str, document: str) -> None:
        await self._backend.execute(
            "INSERT INTO workflows (tenant, name, document, updated_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (tenant, name) DO UPDATE SET document = EXCLUDED.document,"
            " updated_at = EXCLUDED.updated_at",
            (tenant, name, document, utcnow()),
        )

    async def get_workflow(self, tenant: str, name: str) -> str | None:
        rows = await self._backend.execute(
            "SELECT document FROM workflows WHERE tenant = %s AND name = %s", (tenant, name)
        )
        return rows[0][0] if rows else None

    async def list_workflows(self, tenant: str) -> dict[str, str]:
        rows = await self._backend.execute(
            "SELECT name, document FROM workflows WHERE tenant = %s ORDER BY name", (tenant,)
        )
        return {name: doc for name, doc in rows}
