"""The workflow machine's Lambda side: each task's work on a stored workflow run.

The machine (:mod:`.definition`) only routes; every decision is the interpreter's
(:func:`~astromesh.workflows.next_action`, :func:`~astromesh.workflows.apply_outcome`) over
the run the store holds, exactly as the local executor drives it. What crosses the machine
is :func:`payload` of an action: its kind, its step and the few numbers a state needs (the
child run's id, a Wait's seconds, a token's timeout), never a rendered input or an output.

Writes use the store's optimistic concurrency: branches of a parallel step applying at once
re-read and re-apply on a conflict, and an outcome that no longer fits (a retried task that
already applied) is :class:`~astromesh.workflows.StaleOutcome` and is dropped.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from astromesh.errors import ConflictError
from astromesh.workflows import (
    Action,
    Approved,
    AwaitApproval,
    CallTool,
    Error,
    Finish,
    Ok,
    Outcome,
    Parallel,
    Rejected,
    RunAgent,
    StaleOutcome,
    TimedOut,
    Wait,
    WorkflowRun,
    WorkflowStatus,
    apply_outcome,
    next_action,
)
from astromesh.workflows.stepfunctions.definition import MAX_TASK_SECONDS, REJECTED

logger = logging.getLogger(__name__)

SAVE_ATTEMPTS = 8
"""Re-reads of a run whose save lost a race (parallel branches applying together)."""

TIMEOUT = "States.Timeout"


def payload(action: Action, *, child_run_id: str | None = None) -> dict[str, Any]:
    """What the machine carries for ``action``: routing and ids only (see the module doc)."""
    if isinstance(action, RunAgent):
        return {
            "kind": action.kind,
            "step": action.step,
            "child_run_id": child_run_id,
            "timeout_seconds": _token_seconds(action.timeout_seconds),
        }
    if isinstance(action, CallTool):
        return {"kind": action.kind, "step": action.step}
    if isinstance(action, Wait):
        if action.seconds is None:  # until resumed: a task token, like an approval
            return {
                "kind": "await_resume",
                "step": action.step,
                "timeout_seconds": _token_seconds(action.timeout_seconds),
            }
        # Step Functions waits whole seconds; never less than asked.
        return {"kind": action.kind, "step": action.step, "seconds": math.ceil(action.seconds)}
    if isinstance(action, AwaitApproval):
        return {
            "kind": action.kind,
            "step": action.step,
            "timeout_seconds": _token_seconds(action.timeout_seconds),
        }
    if isinstance(action, Finish):
        return {"kind": action.kind, "status": action.status}
    raise TypeError(f"no payload for {action!r}")  # Parallel is built by the driver


def _token_seconds(seconds: float | None) -> int:
    """A task's ``TimeoutSeconds`` (an approval's token, an agent step's child execution):
    a positive whole number, a year at most."""
    if seconds is None:
        return MAX_TASK_SECONDS
    return max(1, min(MAX_TASK_SECONDS, math.ceil(seconds)))


def outcome_of(next_: dict[str, Any], result: dict[str, Any]) -> Outcome | None:
    """The interpreter's outcome for what a dispatched state answered; ``None`` when the
    state applied it itself (a tool call)."""
    error = result.get("Error")
    kind = next_["kind"]
    if error == TIMEOUT:
        return TimedOut()
    if error == REJECTED:
        decision = _json(result.get("Cause"))
        return Rejected(
            approver=str(decision.get("approver") or "unknown"), comment=decision.get("comment")
        )
    if error is not None:
        return Error(type=str(error), message=_cause(result.get("Cause")))
    if kind in ("wait", "await_resume"):
        return Ok(output=result.get("payload"))
    if kind == "await_approval":
        return Approved(
            approver=str(result.get("approver") or "unknown"), comment=result.get("comment")
        )
    return None


def _json(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _cause(cause: Any) -> str:
    """A caught error's cause, readable: a Lambda error's message, else the text (bounded)."""
    parsed = _json(cause)
    message = parsed.get("errorMessage") or parsed.get("error") or cause or "failed"
    return str(message)[:2000]


def _without_token(run: WorkflowRun) -> WorkflowRun:
    """The run with its answered resume token dropped (a later wait stores its own)."""
    run.task_token = None
    return run


class WorkflowDriver:
    """The workflow machine's tasks over one store.

    Args:
        store: the workflow runs (``create`` / ``get`` / ``save`` with optimistic
            concurrency).
        workflow_of: the run's workflow (the document the run carries).
        start_child: creates the child agent run of a :class:`RunAgent` (screened and
            stored, not started) and returns its id; the machine starts it.
        read_child: the outcome of a child agent run once its execution ended (``None``
            when the child never ended: its execution failed before finalizing it).
        call_tool: runs a :class:`CallTool` for a run and returns its outcome.
        on_approval: told of a pending approval once its token is stored (its step's
            ``notify``: :mod:`astromesh.workflows.notify`).
    """

    def __init__(
        self,
        store: Any,
        *,
        workflow_of: Callable[[WorkflowRun], Any],
        start_child: Callable[[WorkflowRun, RunAgent], Awaitable[str]],
        read_child: Callable[[str], Awaitable[Outcome | None]],
        call_tool: Callable[[WorkflowRun, CallTool], Awaitable[Outcome]],
        on_approval: Callable[[WorkflowRun], Awaitable[object]] | None = None,
    ) -> None:
        self.store = store
        self.workflow_of = workflow_of
        self.start_child = start_child
        self.read_child = read_child
        self.call_tool_of = call_tool
        self.on_approval = on_approval

    async def handle(self, action: str, event: dict[str, Any]) -> dict[str, Any]:
        """One task of the machine (``functions/workflow_step``'s events)."""
        run_id = event["run_id"]
        if action == "advance":
            return {"run_id": run_id, "next": await self.advance(run_id)}
        if action == "apply":
            await self.apply(run_id, event["next"], event.get("result") or {})
        elif action in ("await_approval", "await_resume"):
            await self.hold(run_id, event["next"], event["task_token"])
        elif action == "fail":
            await self.fail(run_id, event.get("error") or {})
        else:
            raise ValueError(f"unknown action {action!r}")
        return {"run_id": run_id}

    # -- tasks -----------------------------------------------------------------------------

    async def advance(self, run_id: str) -> dict[str, Any]:
        """The run's next action, as the machine carries it; a child agent run is created
        first (so the machine only starts it by id)."""
        run = await self.store.get(run_id)
        action = next_action(self.workflow_of(run), run)
        if isinstance(action, Parallel):
            return {
                "kind": action.kind,
                "step": action.step,
                "branches": [await self._payload(run, branch) for branch in action.branches],
            }
        return await self._payload(run, action)

    async def _payload(self, run: WorkflowRun, action: Action) -> dict[str, Any]:
        if isinstance(action, RunAgent):
            return payload(action, child_run_id=await self.start_child(run, action))
        return payload(action)

    async def apply(self, run_id: str, next_: dict[str, Any], result: dict[str, Any]) -> None:
        """Apply what the dispatched state answered for ``next_``'s step."""
        outcome: Outcome | None = None
        if next_["kind"] == "run_agent":
            # The child run says how it ended (its answer, or its own error) even when its
            # execution failed; the caught error only stands in for a child never finalized.
            outcome = await self.read_child(next_["child_run_id"])
            if outcome is None:
                outcome = outcome_of(next_, result) or Error(
                    type="ExecutionFailed", message="the child agent run did not end"
                )
        else:
            outcome = outcome_of(next_, result)
        if outcome is not None:
            await self._apply(run_id, next_["step"], outcome)
        if next_["kind"] == "await_resume":
            await self._update(run_id, _without_token)

    async def call_tool(self, run_id: str, next_: dict[str, Any]) -> dict[str, Any]:
        """Run a tool step (the ``tool_executor`` function's workflow entry) and apply its
        outcome; answers ``{"ok"}`` only (the result stays in the run)."""
        run = await self.store.get(run_id)
        action = self._pending(run, next_["step"])
        if not isinstance(action, CallTool):
            raise StaleOutcome(f"step {next_['step']!r} of {run_id} is not calling a tool")
        outcome = await self.call_tool_of(run, action)
        await self._apply(run_id, action.step, outcome)
        return {"ok": isinstance(outcome, Ok)}

    async def hold(self, run_id: str, next_: dict[str, Any], task_token: str) -> None:
        """Store the token an approval (or a wait until resumed) waits on, so the API can
        answer it; then tell the approval step's ``notify`` (the decision it points at can
        answer the token now)."""

        def keep(run: WorkflowRun) -> WorkflowRun:
            if next_["kind"] == "await_approval":
                if run.pending_approval is None or run.pending_approval.step != next_["step"]:
                    raise StaleOutcome(f"{run_id} awaits no approval of {next_['step']!r}")
                run.pending_approval.task_token = task_token
            else:
                if run.cursor != next_["step"] or run.status is not WorkflowStatus.WAITING:
                    raise StaleOutcome(f"{run_id} is not waiting at {next_['step']!r}")
                run.task_token = task_token
            return run

        run = await self._update(run_id, keep)
        if next_["kind"] == "await_approval" and self.on_approval is not None:
            await self.on_approval(run)

    async def fail(self, run_id: str, error: dict[str, Any]) -> None:
        """The machine failed for good (a task's Lambda error, a bad payload): the run ends
        failed with that error, unless it already ended."""
        message = f"{error.get('Error', 'States.Runtime')}: {_cause(error.get('Cause'))}"

        def failed(run: WorkflowRun) -> WorkflowRun:
            if not run.status.is_terminal:
                run.status = WorkflowStatus.FAILED
                run.error = message
                run.pending_approval = None
            return run

        await self._update(run_id, failed)

    # -- writes ----------------------------------------------------------------------------

    def _pending(self, run: WorkflowRun, step: str) -> Action:
        """The action the run waits on for ``step`` (a branch's, inside a parallel step)."""
        action = next_action(self.workflow_of(run), run)
        for candidate in action.branches if isinstance(action, Parallel) else [action]:
            if getattr(candidate, "step", None) == step:
                return candidate
        return action

    async def _apply(self, run_id: str, step: str, outcome: Outcome) -> None:
        def applied(run: WorkflowRun) -> WorkflowRun:
            return apply_outcome(self.workflow_of(run), run, step, outcome)

        try:
            await self._update(run_id, applied)
        except StaleOutcome as stale:
            # A task retried after it applied, or an outcome overtaken (the run ended).
            logger.info("run_id=<%s> step=<%s> | outcome dropped: %s", run_id, step, stale)

    async def _update(
        self, run_id: str, change: Callable[[WorkflowRun], WorkflowRun]
    ) -> WorkflowRun:
        for _ in range(SAVE_ATTEMPTS):
            run = await self.store.get(run_id)
            try:
                return await self.store.save(change(run))
            except StaleOutcome:
                raise
            except ConflictError:
                continue
        raise ConflictError(f"workflow run {run_id} changed on every attempt to save it")
