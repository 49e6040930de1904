"""The one interpreter of workflows: a pure decision and a pure state transition.

Executors (in-process here, Step Functions on AWS) never decide anything themselves; they
loop::

    run = start_run(workflow, trigger)          # persisted
    while not isinstance(action := next_action(workflow, run), Finish):
        outcome = <do the action>                 # an agent run, a tool call, a timer...
        run = apply_outcome(workflow, run, action.step, outcome)   # persisted (CAS)

``next_action`` only reads the run. ``apply_outcome`` returns a new run with the outcome
recorded and the cursor moved on: retries and their backoff, ``on_error``, ``switch``
jumps, ``when`` skips, waits, approvals and ``on_reject`` are all decided here, and every
template is rendered here (once, when its step is entered, so a retry sends the same input
and the action a state machine carries is already rendered). ``now`` is a parameter so a
decision can be replayed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from astromesh.config.limits import MAX_WORKFLOW_TRANSITIONS
from astromesh.config.workflow import (
    ON_ERROR_CONTINUE,
    ON_ERROR_FAIL,
    WorkflowDocument,
    WorkflowStep,
)
from astromesh.errors import AstromeshError, ConflictError, ValidationFailed
from astromesh.workflows.actions import (
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
    TimedOut,
    Wait,
)
from astromesh.workflows.run import (
    PendingApproval,
    StepState,
    StepStatus,
    WorkflowRun,
    WorkflowStatus,
    utcnow,
)
from astromesh.workflows.templates import render, render_value, truthy, variables


class StaleOutcome(ConflictError):
    """An outcome for a step that is not waiting for it (delivered twice, or too late)."""

    code = "workflow_state_conflict"


def start_run(
    workflow: WorkflowDocument,
    trigger: dict[str, Any],
    *,
    tenant: str = "default",
    origin: str = "file",
    run_id: str | None = None,
    now: datetime | None = None,
) -> WorkflowRun:
    """A new run at its first step (not yet stored)."""
    now = now or utcnow()
    seconds = workflow.spec.deadline_seconds
    run = WorkflowRun(
        workflow=workflow.name,
        namespace=workflow.metadata.namespace,
        tenant=tenant,
        origin=origin,
        document=workflow.to_dict(),
        trigger=trigger,
        created_at=now,
        updated_at=now,
        deadline=now + timedelta(seconds=seconds) if seconds is not None else None,
        **({"id": run_id} if run_id else {}),
    )
    for step in workflow.spec.steps:
        run.steps[step.name] = StepState()
        for branch in step.parallel or []:
            run.steps[branch.name] = StepState()
    _Machine(workflow, run, now).enter(workflow.spec.steps[0].name)
    return run


def next_action(
    workflow: WorkflowDocument, run: WorkflowRun, now: datetime | None = None
) -> Action:
    """What the executor should do next for ``run`` (it changes nothing)."""
    now = now or utcnow()
    if run.status.is_terminal or run.cursor is None:
        status = run.status if run.status.is_terminal else WorkflowStatus.COMPLETED
        return Finish(status=status.value, output=run.output, error=run.error)
    step = workflow.spec.step(run.cursor)
    state = run.steps[step.name]
    if step.parallel is not None and state.status is StepStatus.RUNNING:
        branches = [
            _step_action(branch, run.steps[branch.name], run, now)
            for branch in step.parallel
            if not run.steps[branch.name].status.is_done
        ]
        return Parallel(step=step.name, branches=[b for b in branches if b is not None])
    action = _step_action(step, state, run, now)
    if action is None:  # not reachable for a settled run; kept total for safety
        return Finish(status=WorkflowStatus.FAILED.value, error=f"step {step.name!r} is stuck")
    return action


def _step_action(
    step: WorkflowStep, state: StepState, run: WorkflowRun, now: datetime
) -> RunAgent | CallTool | Wait | AwaitApproval | None:
    if state.status is StepStatus.BACKOFF:
        due = state.retry_at or now
        return Wait(step=step.name, seconds=max(0.0, (due - now).total_seconds()), retry=True)
    if state.status is StepStatus.RUNNING and step.agent is not None:
        return RunAgent(
            step=step.name,
            agent=step.agent,
            input=str(state.input or ""),
            attempt=state.attempts + 1,
            timeout_seconds=step.timeout_seconds,
        )
    if state.status is StepStatus.RUNNING and step.tool is not None:
        return CallTool(
            step=step.name,
            tool=step.tool,
            arguments=dict(state.input or {}),
            attempt=state.attempts + 1,
            timeout_seconds=step.timeout_seconds,
        )
    if state.status is StepStatus.WAITING:
        assert step.wait is not None
        left = None if run.wake_at is None else max(0.0, (run.wake_at - now).total_seconds())
        if _until_resumed(step):
            return Wait(step=step.name, seconds=None, timeout_seconds=left)
        return Wait(
            step=step.name,
            seconds=left,
            until=run.wake_at.isoformat() if run.wake_at else None,
        )
    if state.status is StepStatus.AWAITING_APPROVAL and run.pending_approval is not None:
        pending = run.pending_approval
        left = None
        if pending.expires_at is not None:
            left = max(0.0, (pending.expires_at - now).total_seconds())
        return AwaitApproval(
            step=step.name, prompt=pending.prompt, approver=pending.approver, timeout_seconds=left
        )
    return None


def due_outcome(
    workflow: WorkflowDocument, run: WorkflowRun, now: datetime | None = None
) -> tuple[str, Outcome] | None:
    """What the run's timer firing means, once ``wake_at`` (or a retry's ``retry_at``) has
    passed: ``(step, Ok())`` for a wait or a backoff that ended, ``(step, TimedOut())`` for
    an approval or a wait-until-resumed that expired; ``None`` when nothing is due."""
    now = now or utcnow()
    if run.status.is_terminal or run.cursor is None:
        return None
    step = workflow.spec.step(run.cursor)
    for name in [step.name, *(b.name for b in step.parallel or [])]:
        state = run.steps[name]
        if state.status is StepStatus.BACKOFF and (state.retry_at is None or state.retry_at <= now):
            return name, Ok()
    state = run.steps[step.name]
    if run.wake_at is None or run.wake_at > now:
        return None
    if state.status is StepStatus.AWAITING_APPROVAL:
        return step.name, TimedOut()
    if state.status is StepStatus.WAITING:
        return step.name, (TimedOut() if _until_resumed(step) else Ok())
    return None


def _until_resumed(step: WorkflowStep) -> bool:
    return step.wait is not None and step.wait.duration_seconds is None and step.wait.until is None


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _moment(text: str) -> datetime:
    """An ``until`` as rendered: an ISO 8601 time (UTC when it names no zone)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationFailed(
            f"wait.until rendered {text[:80]!r}, which is not an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def apply_outcome(
    workflow: WorkflowDocument,
    run: WorkflowRun,
    step: str,
    outcome: Outcome,
    now: datetime | None = None,
) -> WorkflowRun:
    """``run`` with ``outcome`` of ``step`` recorded and the run moved to its next action.

    Raises:
        StaleOutcome: the run is over, or ``step`` is not waiting for this outcome.
    """
    now = now or utcnow()
    if run.status.is_terminal:
        raise StaleOutcome(f"workflow run {run.id} is already {run.status.value}")
    if step not in run.steps:
        raise StaleOutcome(f"workflow run {run.id} has no step {step!r}")
    new = run.model_copy(deep=True)
    machine = _Machine(workflow, new, now)
    machine.record(step, outcome)
    new.updated_at = now
    return new


class _Machine:
    """The transitions of one run, applied in place (to a copy the caller made)."""

    def __init__(self, workflow: WorkflowDocument, run: WorkflowRun, now: datetime) -> None:
        self.workflow = workflow
        self.spec = workflow.spec
        self.run = run
        self.now = now
        self.agent_steps = {s.name for s in self._all_steps() if s.agent is not None}

    def _all_steps(self) -> list[WorkflowStep]:
        return [x for s in self.spec.steps for x in (s, *(s.parallel or []))]

    def _values(self) -> dict[str, Any]:
        return variables(self.run, self.agent_steps)

    # -- outcomes ----------------------------------------------------------------------

    def record(self, name: str, outcome: Outcome) -> None:
        run, state = self.run, self.run.steps[name]
        if run.deadline is not None and self.now >= run.deadline:
            self._close(state, StepStatus.TIMED_OUT, error="the workflow's timeout passed")
            self._end(WorkflowStatus.TIMED_OUT, "workflow timed out (timeout_seconds)")
            return
        step = self.spec.step(name)
        kind = outcome.kind
        if state.status is StepStatus.BACKOFF:
            state.status = StepStatus.RUNNING  # the delay elapsed: attempt again
            state.retry_at = None
        elif state.status is StepStatus.RUNNING and step.type in ("agent", "tool"):
            state.attempts += 1
            if isinstance(outcome, Ok):
                state.child_run_id = outcome.child_run_id or state.child_run_id
                self._succeed(step, state, outcome.output, outcome.data)
            elif isinstance(outcome, Error | TimedOut):
                message = outcome.message if isinstance(outcome, Error) else "timed out"
                kind_name = outcome.type if isinstance(outcome, Error) else "timeout"
                self._attempt_failed(step, state, message, kind_name)
            else:
                raise self._stale(name, state, kind)
        elif state.status is StepStatus.WAITING:
            if isinstance(outcome, Ok):
                self._succeed(step, state, outcome.output, None)
            elif isinstance(outcome, TimedOut):
                self._close(state, StepStatus.TIMED_OUT, error="the wait timed out")
                self._failed(step, state)
            else:
                raise self._stale(name, state, kind)
        elif state.status is StepStatus.AWAITING_APPROVAL:
            self._decided(step, state, outcome)
        else:
            raise self._stale(name, state, kind)
        self.settle()

    def _stale(self, name: str, state: StepState, kind: str) -> StaleOutcome:
        return StaleOutcome(
            f"step {name!r} of workflow run {self.run.id} is {state.status.value}; an outcome"
            f" '{kind}' is not expected"
        )

    def _decided(self, step: WorkflowStep, state: StepState, outcome: Outcome) -> None:
        assert step.approval is not None
        self.run.pending_approval = None
        self.run.wake_at = None
        if isinstance(outcome, Approved):
            decision = {"approved": True, "approver": outcome.approver, "comment": outcome.comment}
            self._succeed(step, state, decision, None)
            return
        if isinstance(outcome, Rejected):
            state.output = {
                "approved": False,
                "approver": outcome.approver,
                "comment": outcome.comment,
            }
            self._close(state, StepStatus.REJECTED, error=f"rejected by {outcome.approver}")
            final = WorkflowStatus.REJECTED
        elif isinstance(outcome, TimedOut):
            self._close(state, StepStatus.TIMED_OUT, error="no decision before its timeout")
            final = WorkflowStatus.TIMED_OUT
        else:
            raise self._stale(step.name, state, outcome.kind)
        target = step.approval.on_reject
        if target == ON_ERROR_CONTINUE:
            self._advance(step)
        elif target == ON_ERROR_FAIL:
            self._end(final, f"step {step.name!r}: {state.error}")
        else:
            self.enter(target)

    def _succeed(self, step: WorkflowStep, state: StepState, output: Any, data: Any) -> None:
        state.output = output
        state.data = data
        state.error = state.error_type = None
        self._close(state, StepStatus.SUCCEEDED)
        if (parent := self.spec.parent_of(step.name)) is not None:
            self._branch_done(parent)
            return
        self.run.output = output
        self._advance(step)

    def _attempt_failed(
        self, step: WorkflowStep, state: StepState, message: str, error_type: str
    ) -> None:
        state.error, state.error_type = message, error_type
        if step.retry is not None and state.attempts < step.retry.max_attempts:
            state.status = StepStatus.BACKOFF
            state.retry_at = self.now + timedelta(seconds=step.retry.delay(state.attempts))
            return
        self._close(state, StepStatus.FAILED, error=message)
        self._failed(step, state)

    def _failed(self, step: WorkflowStep, state: StepState) -> None:
        """``step`` ended without success: its ``on_error`` decides where the run goes."""
        if (parent := self.spec.parent_of(step.name)) is not None:
            self._branch_done(parent)
            return
        if step.on_error == ON_ERROR_CONTINUE:
            self._advance(step)
        elif step.on_error == ON_ERROR_FAIL:
            self._end(WorkflowStatus.FAILED, f"step {step.name!r} failed: {state.error}")
        else:
            self.enter(step.on_error)

    def _branch_done(self, parent: WorkflowStep) -> None:
        branches = parent.parallel or []
        states = {b.name: self.run.steps[b.name] for b in branches}
        if not all(s.status.is_done for s in states.values()):
            return
        state = self.run.steps[parent.name]
        fatal = [
            f"{b.name}: {states[b.name].error}"
            for b in branches
            if states[b.name].status is StepStatus.FAILED and b.on_error != ON_ERROR_CONTINUE
        ]
        outputs = {n: s.output for n, s in states.items() if s.status is StepStatus.SUCCEEDED}
        if fatal:
            state.output = outputs
            self._close(state, StepStatus.FAILED, error="; ".join(fatal))
            self._failed(parent, state)
            return
        data = {n: s.data for n, s in states.items() if s.data is not None}
        self._succeed(parent, state, outputs, data or None)

    def _close(self, state: StepState, status: StepStatus, *, error: str | None = None) -> None:
        state.status = status
        state.ended_at = self.now
        state.retry_at = None
        if error is not None:
            state.error = error

    def _end(self, status: WorkflowStatus, error: str | None = None) -> None:
        self.run.status = status
        self.run.error = error
        self.run.cursor = None if status is WorkflowStatus.COMPLETED else self.run.cursor
        self.run.wake_at = None
        self.run.pending_approval = None

    # -- moving the cursor -------------------------------------------------------------

    def _advance(self, step: WorkflowStep) -> None:
        names = [s.name for s in self.spec.steps]
        index = names.index(step.name) + 1
        if index < len(names):
            self.enter(names[index])
        else:
            self.run.cursor = None
            self._end(WorkflowStatus.COMPLETED)

    def enter(self, name: str) -> None:
        """Put the cursor on ``name``, fresh (a loop back starts the step over), and go
        through every step that needs no executor (skips, switches) to the next action."""
        run = self.run
        run.transitions += 1
        if run.transitions > MAX_WORKFLOW_TRANSITIONS:
            self._end(
                WorkflowStatus.FAILED,
                f"the run entered {MAX_WORKFLOW_TRANSITIONS} steps; a loop is not ending",
            )
            return
        if run.deadline is not None and self.now >= run.deadline:
            self._end(WorkflowStatus.TIMED_OUT, "workflow timed out (timeout_seconds)")
            return
        step = self.spec.step(name)
        run.cursor = name
        run.status = WorkflowStatus.RUNNING
        state = run.steps[name] = StepState(started_at=self.now)
        for branch in step.parallel or []:
            run.steps[branch.name] = StepState()
        index = [s.name for s in self.spec.steps].index(name)
        field = f"spec.steps[{index}]"
        try:
            if step.when is not None and not truthy(step.when, f"{field}.when", self._values()):
                self._close(state, StepStatus.SKIPPED)
                self._advance(step)
                return
            self._start(step, state, field)
        except AstromeshError as exc:  # a template that fails to render fails its step
            state.error_type = "template"
            self._close(state, StepStatus.FAILED, error=exc.message)
            self._failed(step, state)

    def _start(self, step: WorkflowStep, state: StepState, field: str) -> None:
        values = self._values()
        run = self.run
        if step.switch is not None:
            for j, case in enumerate(step.switch):
                if case.default or truthy(case.when or "", f"{field}.switch[{j}].when", values):
                    state.output = {"goto": case.goto}
                    self._close(state, StepStatus.SUCCEEDED)
                    self.enter(case.goto)
                    return
            state.output = {"goto": None}
            self._close(state, StepStatus.SUCCEEDED)
            self._advance(step)
        elif step.wait is not None:
            wait = step.wait
            wake: datetime | None = None
            if wait.duration_seconds is not None:
                wake = self.now + timedelta(seconds=wait.duration_seconds)
            elif wait.until is not None:
                wake = _moment(render(wait.until, f"{field}.wait.until", values))
            elif wait.timeout_seconds is not None:
                wake = self.now + timedelta(seconds=wait.timeout_seconds)
            state.status = StepStatus.WAITING
            run.status = WorkflowStatus.WAITING
            run.wake_at = _earliest(wake, run.deadline)
        elif step.approval is not None:
            approval = step.approval
            prompt = render(approval.prompt, f"{field}.approval.prompt", values)
            expires = None
            if approval.timeout_seconds is not None:
                expires = self.now + timedelta(seconds=approval.timeout_seconds)
            expires = _earliest(expires, run.deadline)
            state.status = StepStatus.AWAITING_APPROVAL
            run.status = WorkflowStatus.AWAITING_APPROVAL
            run.pending_approval = PendingApproval(
                step=step.name,
                prompt=prompt,
                approver=approval.approver,
                requested_at=self.now,
                expires_at=expires,
            )
            run.wake_at = expires
        elif step.parallel is not None:
            state.status = StepStatus.RUNNING
            for j, branch in enumerate(step.parallel):
                self._start_branch(branch, f"{field}.parallel[{j}]", values)
            self._branch_done(step)  # every branch skipped: done at once
        else:
            self._prepare(step, state, field, values)

    def _start_branch(self, branch: WorkflowStep, field: str, values: dict[str, Any]) -> None:
        state = self.run.steps[branch.name] = StepState(started_at=self.now)
        try:
            if branch.when is not None and not truthy(branch.when, f"{field}.when", values):
                self._close(state, StepStatus.SKIPPED)
                return
            self._prepare(branch, state, field, values)
        except AstromeshError as exc:
            state.error_type = "template"
            self._close(state, StepStatus.FAILED, error=exc.message)

    def _prepare(
        self, step: WorkflowStep, state: StepState, field: str, values: dict[str, Any]
    ) -> None:
        """An agent or tool step: render its input once, for every attempt."""
        if step.agent is not None:
            rendered: Any = render(step.input or "{{ trigger.query }}", f"{field}.input", values)
        else:
            rendered = render_value(step.arguments or {}, f"{field}.arguments", values)
        state.status = StepStatus.RUNNING
        state.input = rendered

    def settle(self) -> None:
        """After an outcome: a run left running with nothing to do has finished."""
        run = self.run
        if run.status.is_terminal:
            return
        if run.cursor is None:
            self._end(WorkflowStatus.COMPLETED)
