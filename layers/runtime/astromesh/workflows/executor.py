"""Workflow executors: who does what the interpreter decides, and who is told of a decision.

:class:`WorkflowExecutor` is the seam the REST approve/reject/resume routes call through
(``resume_approval``, ``resume_wait``): the local executor applies the outcome and drives
the run on in-process; the Step Functions one answers the stored task token instead.

:class:`LocalWorkflowExecutor` loops ``next_action`` -> do it -> ``apply_outcome`` -> save
(compare-and-swap) in-process. Short waits and retry backoffs (up to ``inline_wait_seconds``)
are slept through; longer ones, waits until resumed and approvals leave the run stored and
nothing running: a timer task wakes it at ``wake_at``, and after a restart
:meth:`LocalWorkflowExecutor.recover` finds every unfinished run and carries it on (a run
caught mid-step repeats that step: at-least-once, as a retried Step Functions task does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from astromesh.config.workflow import WorkflowDocument
from astromesh.errors import ConflictError
from astromesh.workflows.actions import (
    AwaitApproval,
    CallTool,
    Finish,
    Ok,
    Outcome,
    Parallel,
    RunAgent,
    Wait,
)
from astromesh.workflows.interpreter import apply_outcome, due_outcome, next_action
from astromesh.workflows.run import StepStatus, WorkflowRun, WorkflowStatus, utcnow
from astromesh.workflows.steps import StepRunner
from astromesh.workflows.store import WorkflowRunStore

logger = logging.getLogger(__name__)

INLINE_WAIT_SECONDS = 5.0
"""Waits and backoffs up to this long are slept through in the driving task; longer ones
leave the run stored (``waiting``) with a timer, so a restart loses nothing."""


class WorkflowExecutor(ABC):
    """What drives runs; see the module doc."""

    name: str

    @abstractmethod
    async def start(self, workflow: WorkflowDocument, run: WorkflowRun) -> WorkflowRun:
        """Begin driving ``run`` (already stored); return it as it stands when driving has
        been handed off (the local executor drives it in a background task)."""

    @abstractmethod
    async def resume_approval(self, run: WorkflowRun, outcome: Outcome) -> WorkflowRun:
        """A person decided (``Approved``/``Rejected``) or the approval expired
        (``TimedOut``): record it and carry the run on. ``run`` is the stored run, awaiting
        approval. Raises ``ConflictError`` when another writer got there first."""

    @abstractmethod
    async def resume_wait(self, run: WorkflowRun, payload: dict[str, Any]) -> WorkflowRun:
        """``POST .../resume`` of a run waiting until resumed: ``payload`` is the wait
        step's output."""


class LocalWorkflowExecutor(WorkflowExecutor):
    """Drives runs in-process; see the module doc."""

    name = "local"

    def __init__(
        self,
        store: WorkflowRunStore,
        steps: StepRunner,
        document_of: Callable[[WorkflowRun], WorkflowDocument],
        *,
        inline_wait_seconds: float = INLINE_WAIT_SECONDS,
        on_approval: Callable[[WorkflowRun], Awaitable[WorkflowRun]] | None = None,
    ) -> None:
        self.store = store
        self.steps = steps
        self.document_of = document_of
        self.inline_wait_seconds = inline_wait_seconds
        self.on_approval = on_approval
        """Told of a run that just suspended at an approval (its ``notify``); returns the
        run as stored afterwards."""
        self._drivers: dict[str, asyncio.Task[WorkflowRun]] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    # -- starting and deciding -----------------------------------------------------------

    async def start(self, workflow: WorkflowDocument, run: WorkflowRun) -> WorkflowRun:
        self._spawn(workflow, run)
        return run

    def driving(self, run_id: str) -> asyncio.Task[WorkflowRun] | None:
        """The task driving ``run_id`` in this process, if any (to wait on it)."""
        return self._drivers.get(run_id)

    async def resume_approval(self, run: WorkflowRun, outcome: Outcome) -> WorkflowRun:
        assert run.pending_approval is not None
        return await self._record(run, run.pending_approval.step, outcome)

    async def resume_wait(self, run: WorkflowRun, payload: dict[str, Any]) -> WorkflowRun:
        assert run.cursor is not None
        return await self._record(run, run.cursor, Ok(output=payload))

    async def _record(self, run: WorkflowRun, step: str, outcome: Outcome) -> WorkflowRun:
        workflow = self.document_of(run)
        self._cancel_timer(run.id)
        advanced = await self.store.save(apply_outcome(workflow, run, step, outcome))
        self._spawn(workflow, advanced)
        return advanced

    # -- restarts and timers -------------------------------------------------------------

    async def recover(self) -> int:
        """Carry on every unfinished local run of the store (at start-up): running ones are
        driven again, suspended ones get their timer back. Returns how many were found."""
        found = await self.store.list_runs(
            statuses=[s.value for s in WorkflowStatus if not s.is_terminal], limit=10_000
        )
        count = 0
        for run in found:
            if run.executor != self.name or run.id in self._drivers:
                continue
            count += 1
            try:
                workflow = self.document_of(run)
            except Exception:
                logger.exception("workflow_run=<%s> | its workflow no longer loads", run.id)
                continue
            if run.status is WorkflowStatus.RUNNING:
                self._spawn(workflow, run)
            elif run.wake_at is not None:
                self._set_timer(run.id, run.wake_at)
        return count

    def _set_timer(self, run_id: str, at: datetime) -> None:
        self._cancel_timer(run_id)
        if not self._closed:
            self._timers[run_id] = asyncio.create_task(self._fire(run_id, at))

    def _cancel_timer(self, run_id: str) -> None:
        timer = self._timers.pop(run_id, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _fire(self, run_id: str, at: datetime) -> None:
        await asyncio.sleep(max(0.0, (at - utcnow()).total_seconds()))
        self._timers.pop(run_id, None)
        run = await self.store.get(run_id)
        workflow = self.document_of(run)
        due = due_outcome(workflow, run)
        if due is None:
            if not run.status.is_terminal and run.wake_at is not None:
                self._set_timer(run_id, run.wake_at)
            return
        try:
            advanced = await self.store.save(apply_outcome(workflow, run, *due))
        except ConflictError:
            return  # someone decided or resumed it meanwhile; their driver goes on
        self._spawn(workflow, advanced)

    # -- driving -------------------------------------------------------------------------

    def _spawn(self, workflow: WorkflowDocument, run: WorkflowRun) -> None:
        if self._closed:
            return
        task = asyncio.create_task(self._drive_logged(workflow, run))
        self._drivers[run.id] = task
        task.add_done_callback(lambda _t, rid=run.id, t=task: self._forget(rid, t))

    def _forget(self, run_id: str, task: asyncio.Task[WorkflowRun]) -> None:
        if self._drivers.get(run_id) is task:
            del self._drivers[run_id]

    async def _drive_logged(self, workflow: WorkflowDocument, run: WorkflowRun) -> WorkflowRun:
        try:
            return await self.drive(workflow, run)
        except ConflictError:
            logger.info("workflow_run=<%s> | advanced by another writer; stopping here", run.id)
            return await self.store.get(run.id)

    async def drive(self, workflow: WorkflowDocument, run: WorkflowRun) -> WorkflowRun:
        """Advance ``run`` (stored) until it finishes or suspends; every step is saved."""
        while True:
            action = next_action(workflow, run)
            if isinstance(action, Finish | AwaitApproval):
                if isinstance(action, AwaitApproval) and self.on_approval is not None:
                    run = await self.on_approval(run)
                if run.wake_at is not None:
                    self._set_timer(run.id, run.wake_at)
                return run
            if isinstance(action, Wait):
                if action.seconds is None or action.seconds > self.inline_wait_seconds:
                    self._park(run, action)
                    return run
                await asyncio.sleep(action.seconds)
                run = await self.store.save(apply_outcome(workflow, run, action.step, Ok()))
                continue
            outcomes = await self._do(run, action)
            for step, outcome in outcomes:
                run = apply_outcome(workflow, run, step, outcome)
            run = await self.store.save(run)

    def _park(self, run: WorkflowRun, action: Wait) -> None:
        """Leave a long wait to a timer (``wake_at``; a backoff's ``retry_at``)."""
        state = run.steps[action.step]
        at = state.retry_at if state.status is StepStatus.BACKOFF else run.wake_at
        if at is not None:
            self._set_timer(run.id, at)

    async def _do(
        self, run: WorkflowRun, action: RunAgent | CallTool | Parallel
    ) -> list[tuple[str, Outcome]]:
        if not isinstance(action, Parallel):
            return [(action.step, await self.steps.do(run, action))]

        async def branch(act: RunAgent | CallTool | Wait) -> tuple[str, Outcome]:
            if isinstance(act, Wait):  # a branch's retry backoff
                await asyncio.sleep(min(act.seconds or 0.0, self.inline_wait_seconds))
                return act.step, Ok()
            return act.step, await self.steps.do(run, act)

        return list(await asyncio.gather(*(branch(b) for b in action.branches)))

    async def aclose(self) -> None:
        """Stop every driver and timer of this process (their runs stay stored and are
        carried on by :meth:`recover` at the next start)."""
        self._closed = True
        tasks = [*self._drivers.values(), *self._timers.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._drivers.clear()
        self._timers.clear()
