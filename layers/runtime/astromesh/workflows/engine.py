"""``WorkflowEngine``: the workflows a tenant sees, their runs, and decisions on them.

Used by the REST routes and ``astromesh run --workflow``; free of any web framework. It
finds a workflow (the tenant's registered one, else the agents folder's), starts runs on
the local executor (or another registered in :attr:`WorkflowEngine.executors`, such as
the Step Functions one), and routes every approve, reject and resume through the run's own
executor's ``resume_approval`` / ``resume_wait``, so there is one path for each.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from astromesh.config.workflow import WorkflowDocument
from astromesh.errors import ConflictError, NotFoundError
from astromesh.workflows.actions import Outcome
from astromesh.workflows.executor import (
    INLINE_WAIT_SECONDS,
    LocalWorkflowExecutor,
    WorkflowExecutor,
)
from astromesh.workflows.interpreter import start_run
from astromesh.workflows.run import WorkflowRun, WorkflowStatus
from astromesh.workflows.steps import AgentResolver, StepRunner
from astromesh.workflows.store import WorkflowRunStore, open_workflow_store

if TYPE_CHECKING:
    from astromesh.runtime import AgentRuntime
    from astromesh.security import RegistrationPolicy
    from astromesh.workflows.notify import ApprovalNotifier

SYNC_SECONDS = 25.0
"""How long a run request waits for the run to end before answering 202 with its id."""

_DOCUMENT_CACHE = 256
"""Validated workflow documents kept by run id (validation trial-renders every template)."""

FOLLOW_SECONDS = 0.2
"""How often a run driven elsewhere is read while a request waits for it."""

FILE = "file"
REGISTERED = "registered"


class WorkflowEngine:
    """See the module doc.

    Args:
        runtime: the agents, and the state backend the runs are stored in.
        agents: how agent steps find their agent (default: the agents folder).
        policy: what registered workflows' tools run under (none: they cannot run tools).
    """

    def __init__(
        self,
        runtime: AgentRuntime,
        *,
        agents: AgentResolver | None = None,
        policy: RegistrationPolicy | None = None,
        inline_wait_seconds: float = INLINE_WAIT_SECONDS,
        sync_seconds: float = SYNC_SECONDS,
    ) -> None:
        self.runtime = runtime
        self.steps = StepRunner(runtime, agents=agents, policy=policy)
        self.policy = policy
        self.inline_wait_seconds = inline_wait_seconds
        self.sync_seconds = sync_seconds
        self.executors: dict[str, WorkflowExecutor] = {}
        """Executors by name; ``local`` is added when the store opens. A run's ``executor``
        names the one that drives it and is told of its decisions."""
        self.default_executor = LocalWorkflowExecutor.name
        """Where new runs go: ``local``, or ``stepfunctions`` where the API has the workflow
        machine (``channels.services``)."""
        self._store: WorkflowRunStore | None = None
        self._documents: dict[str, tuple[str, WorkflowDocument]] = {}
        self._lock = asyncio.Lock()

    async def store(self) -> WorkflowRunStore:
        """The run store (opened, with the local executor, on first use)."""
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    store = open_workflow_store(await self.runtime.state())
                    self.executors.setdefault(
                        LocalWorkflowExecutor.name,
                        LocalWorkflowExecutor(
                            store,
                            self.steps,
                            self.document_of,
                            inline_wait_seconds=self.inline_wait_seconds,
                            on_approval=self.notifier(store),
                        ),
                    )
                    self._store = store
        return self._store

    def notifier(self, store: WorkflowRunStore) -> ApprovalNotifier:
        """What tells an approval step's ``notify`` webhook (both executors use one)."""
        from astromesh.workflows.notify import ApprovalNotifier  # its HTTP client: on use

        return ApprovalNotifier(store, self.document_of, env=self.runtime.env, policy=self.policy)

    async def local(self) -> LocalWorkflowExecutor:
        await self.store()
        executor = self.executors[LocalWorkflowExecutor.name]
        assert isinstance(executor, LocalWorkflowExecutor)
        return executor

    def document_of(self, run: WorkflowRun) -> WorkflowDocument:
        """The workflow ``run`` runs: the copy it was started with."""
        key = json.dumps(run.document, sort_keys=True)
        cached = self._documents.get(run.id)
        if cached is None or cached[0] != key:
            if len(self._documents) >= _DOCUMENT_CACHE:
                self._documents.pop(next(iter(self._documents)))
            cached = self._documents[run.id] = (key, WorkflowDocument.model_validate(run.document))
        return cached[1]

    # -- workflows -----------------------------------------------------------------------

    async def find(self, name: str, *, tenant: str) -> tuple[WorkflowDocument, str]:
        """``(workflow, origin)``: ``tenant``'s registered one, else the folder's.

        Raises:
            NotFoundError: neither has one of that name.
        """
        text = await (await self.store()).get_workflow(tenant, name)
        if text is not None:
            return WorkflowDocument.model_validate_json(text), REGISTERED
        found = self.runtime.config.workflows.get(name)
        if found is None:
            known = sorted({*self.runtime.config.workflows, *await self._registered(tenant)})
            raise NotFoundError(
                f"workflow {name!r} not found (known workflows: {', '.join(known) or 'none'})"
            )
        return found, FILE

    async def _registered(self, tenant: str) -> dict[str, str]:
        return await (await self.store()).list_workflows(tenant)

    async def listing(self, *, tenant: str) -> list[tuple[WorkflowDocument, str]]:
        """Every workflow ``tenant`` sees, by name (a registered one over a file namesake)."""
        found = {name: (doc, FILE) for name, doc in self.runtime.config.workflows.items()}
        for name, text in (await self._registered(tenant)).items():
            found[name] = (WorkflowDocument.model_validate_json(text), REGISTERED)
        return [found[name] for name in sorted(found)]

    async def register(self, workflow: WorkflowDocument, *, tenant: str) -> None:
        """Keep ``tenant``'s workflow (already checked: see :mod:`.registration`).

        Raises:
            ConflictError: the name is the agents folder's workflow (shared by every tenant).
        """
        if workflow.name in self.runtime.config.workflows:
            raise ConflictError(
                f"workflow {workflow.name!r} is defined in the agents folder and cannot be"
                " replaced over the API; choose another name"
            )
        await (await self.store()).put_workflow(
            tenant, workflow.name, json.dumps(workflow.to_dict())
        )

    # -- runs ----------------------------------------------------------------------------

    async def start(
        self, name: str, trigger: dict[str, Any], *, tenant: str, executor: str | None = None
    ) -> WorkflowRun:
        """Store a new run of ``name`` and hand it to ``executor`` (the default one)."""
        executor = executor or self.default_executor
        workflow, origin = await self.find(name, tenant=tenant)
        store = await self.store()
        run = start_run(workflow, trigger, tenant=tenant, origin=origin)
        run.executor = executor
        run = await store.create(run)
        return await self.executors[executor].start(workflow, run)

    async def settled(self, run: WorkflowRun, seconds: float | None = None) -> WorkflowRun:
        """``run`` once its driver in this process stops (it finished or suspended), or as
        stored after ``seconds`` (``sync_seconds`` by default) if it is still going."""
        local = await self.local()
        if run.executor != local.name:
            return await self._followed(run, seconds or self.sync_seconds)
        task = local.driving(run.id)
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=seconds or self.sync_seconds)
            if not done:
                return await self.get_run(run.id)
        return await self.get_run(run.id)

    async def _followed(self, run: WorkflowRun, seconds: float) -> WorkflowRun:
        """A run driven elsewhere (the workflow machine), read from the store until it has
        moved on from ``run`` and ended or suspended, or ``seconds`` passed."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            current = await self.get_run(run.id)
            moved = current.version != run.version
            if moved and (current.status.is_terminal or current.status.is_suspended):
                return current
            if asyncio.get_running_loop().time() >= deadline:
                return current
            await asyncio.sleep(FOLLOW_SECONDS)

    async def run(
        self, name: str, trigger: dict[str, Any], *, tenant: str, seconds: float | None = None
    ) -> WorkflowRun:
        """Start a run and wait for it (see :meth:`settled`)."""
        return await self.settled(await self.start(name, trigger, tenant=tenant), seconds)

    async def get_run(self, run_id: str, *, tenant: str | None = None) -> WorkflowRun:
        """The run; ``tenant`` (unless ``None``: an admin) must be its tenant, else the same
        404 as an unknown id."""
        run = await (await self.store()).get(run_id)
        if tenant is not None and run.tenant != tenant:
            raise NotFoundError(f"workflow run {run_id!r} not found")
        return run

    async def decide(self, run: WorkflowRun, outcome: Outcome) -> WorkflowRun:
        """Approve, reject (or expire) ``run``'s pending approval through its executor.

        Raises:
            ConflictError: the run is not awaiting approval (409 naming its state).
        """
        if run.status is not WorkflowStatus.AWAITING_APPROVAL or run.pending_approval is None:
            raise ConflictError(
                f"workflow run {run.id} is {run.status.value}, not awaiting approval"
            )
        return await self.executors[run.executor].resume_approval(run, outcome)

    async def resume(self, run: WorkflowRun, payload: dict[str, Any]) -> WorkflowRun:
        """Resume a run waiting until resumed (a ``wait`` with neither duration nor
        ``until``), the payload becoming the wait step's output.

        Raises:
            ConflictError: the run is not waiting to be resumed (409 naming its state).
        """
        workflow = self.document_of(run)
        step = workflow.spec.step(run.cursor) if run.cursor else None
        waits = step is not None and step.wait is not None
        if run.status is not WorkflowStatus.WAITING or not waits or step is None:
            raise ConflictError(f"workflow run {run.id} is {run.status.value}, not waiting")
        assert step.wait is not None
        if step.wait.duration_seconds is not None or step.wait.until is not None:
            raise ConflictError(
                f"workflow run {run.id} waits for a timer (step {step.name!r}), not to be resumed"
            )
        return await self.executors[run.executor].resume_wait(run, payload)

    async def pending_approvals(
        self, *, tenant: str | None, approver: str | None = None
    ) -> list[WorkflowRun]:
        """Runs awaiting approval (``tenant=None``: every tenant's), optionally only those
        asking ``approver``."""
        runs = await (await self.store()).list_runs(
            tenant=tenant, statuses=[WorkflowStatus.AWAITING_APPROVAL.value], limit=1000
        )
        return [
            r
            for r in runs
            if r.pending_approval is not None
            and (approver is None or r.pending_approval.approver == approver)
        ]

    async def recover(self) -> int:
        """Carry on the unfinished runs of the local executor (at start-up)."""
        return await (await self.local()).recover()

    async def aclose(self) -> None:
        if self._store is not None:
            await (await self.local()).aclose()
