"""Workflow runs in memory: for tests and the ``memory`` backend (lost on exit)."""

from __future__ import annotations

import asyncio

from astromesh.workflows.store.base import RunRow, WorkflowRunStore


class MemoryWorkflowRunStore(WorkflowRunStore):
    def __init__(self) -> None:
        self._rows: dict[str, RunRow] = {}
        self._workflows: dict[tuple[str, str], str] = {}
        self._lock = asyncio.Lock()

    async def _insert(self, row: RunRow) -> bool:
        async with self._lock:
            if row.id in self._rows:
                return False
            self._rows[row.id] = row
            return True

    async def _select(self, run_id: str) -> str | None:
        row = self._rows.get(run_id)
        return row.document if row else None

    async def _swap(self, expected_version: int, row: RunRow) -> bool:
        async with self._lock:
            current = self._rows.get(row.id)
            if current is None or current.version != expected_version:
                return False
            self._rows[row.id] = row
            return True

    async def _scan(self, tenant: str | None, statuses: list[str] | None, limit: int) -> list[str]:
        return [
            r.document
            for r in self._rows.values()
            if (tenant is None or r.tenant == tenant) and (statuses is None or r.status in statuses)
        ]

    async def put_workflow(self, tenant: str, name: str, document: str) -> None:
        self._workflows[tenant, name] = document

    async def get_workflow(self, tenant: str, name: str) -> str | None:
        return self._workflows.get((tenant, name))

    async def list_workflows(self, tenant: str) -> dict[str, str]:
        return {n: d for (t, n), d in sorted(self._workflows.items()) if t == tenant}
