"""The workflow run store: documents by id with optimistic concurrency, written once here.

A backend fills in five small methods over rows of ``(id, tenant, workflow, status,
version, created_at, updated_at, document)``; encoding, the version check and the error
wording are shared, so every backend behaves alike (the same tests run against each).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from astromesh.errors import ConflictError, NotFoundError
from astromesh.workflows.run import WorkflowRun, utcnow


@dataclass(frozen=True, slots=True)
class RunRow:
    """One stored run: the columns backends index, and the JSON document."""

    id: str
    tenant: str
    workflow: str
    status: str
    version: int
    document: str


class WorkflowRunStore(ABC):
    """Workflow runs by id (CAS on ``version``) and registered workflows by tenant."""

    async def create(self, run: WorkflowRun) -> WorkflowRun:
        """Store a new run at version 1 (the caller's object is updated).

        Raises:
            ConflictError: a run with this id exists.
        """
        written = run.model_copy(update={"version": 1, "updated_at": utcnow()})
        if not await self._insert(_row(written)):
            raise ConflictError(f"workflow run {run.id!r} already exists")
        run.version, run.updated_at = written.version, written.updated_at
        return run

    async def get(self, run_id: str) -> WorkflowRun:
        """The run; raises ``NotFoundError`` when no run has this id."""
        document = await self._select(run_id)
        if document is None:
            raise NotFoundError(f"workflow run {run_id!r} not found")
        return WorkflowRun.model_validate_json(document)

    async def save(self, run: WorkflowRun) -> WorkflowRun:
        """Write ``run`` if the stored version is ``run.version``; bump it (on the caller's
        object too). Two resumes of one run cannot both advance it: the second gets
        ``ConflictError`` and must reload.

        Raises:
            ConflictError: another writer saved first.
            NotFoundError: the run was never created.
        """
        written = run.model_copy(update={"version": run.version + 1, "updated_at": utcnow()})
        if not await self._swap(run.version, _row(written)):
            current = await self._select(run.id)
            if current is None:
                raise NotFoundError(f"workflow run {run.id!r} not found")
            stored = WorkflowRun.model_validate_json(current).version
            raise ConflictError(
                f"workflow run {run.id!r} was modified concurrently (stored version {stored},"
                f" writer had {run.version})"
            )
        run.version, run.updated_at = written.version, written.updated_at
        return run

    async def list_runs(
        self,
        *,
        tenant: str | None = None,
        statuses: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[WorkflowRun]:
        """Newest first; ``tenant=None`` is every tenant's (the restart scan)."""
        documents = await self._scan(tenant, list(statuses) if statuses else None, limit)
        runs = [WorkflowRun.model_validate_json(d) for d in documents]
        return sorted(runs, key=lambda r: r.created_at, reverse=True)[:limit]

    # -- registered workflows ------------------------------------------------------------

    @abstractmethod
    async def put_workflow(self, tenant: str, name: str, document: str) -> None:
        """Keep (or replace) ``tenant``'s workflow ``name`` (its JSON document)."""

    @abstractmethod
    async def get_workflow(self, tenant: str, name: str) -> str | None:
        """``tenant``'s workflow ``name``, or ``None``."""

    @abstractmethod
    async def list_workflows(self, tenant: str) -> dict[str, str]:
        """``tenant``'s registered workflows by name."""

    # -- what a backend fills in --------------------------------------------------------

    @abstractmethod
    async def _insert(self, row: RunRow) -> bool:
        """Insert unless the id exists; whether it was inserted."""

    @abstractmethod
    async def _select(self, run_id: str) -> str | None:
        """The stored document, or ``None``."""

    @abstractmethod
    async def _swap(self, expected_version: int, row: RunRow) -> bool:
        """Replace the row if its stored version is ``expected_version``; whether it did."""

    @abstractmethod
    async def _scan(self, tenant: str | None, statuses: list[str] | None, limit: int) -> list[str]:
        """Documents matching the filters (any order; at least the newest ``limit``)."""


def _row(run: WorkflowRun) -> RunRow:
    return RunRow(
        id=run.id,
        tenant=run.tenant,
        workflow=run.workflow,
        status=run.status.value,
        version=run.version,
        document=run.model_dump_json(),
    )
