"""Durable workflows (``kind: Workflow``): one interpreter, driven by an executor.

The interface executors code against (the local one in :mod:`.engine`, the Step Functions
one beside the agent run machine):

- :func:`start_run` ``(workflow, trigger, *, tenant, origin) -> WorkflowRun``: a new run,
  already moved through any leading skips and switches to its first action.
- :func:`next_action` ``(workflow, run, now=None) -> Action``: a pure decision, one of
  :class:`RunAgent`, :class:`CallTool`, :class:`Wait` (a wait step, or a retry's backoff
  with ``retry=True``), :class:`AwaitApproval`, :class:`Parallel` (branch actions) or
  :class:`Finish`. JSON: ``action.model_dump(mode="json")``; back: ``ACTION.validate_python``.
- :func:`apply_outcome` ``(workflow, run, step, outcome, now=None) -> WorkflowRun``: records
  :class:`Ok` ``(output, data)``, :class:`Error` ``(type, message)``, :class:`Approved` /
  :class:`Rejected` ``(approver, comment)`` or :class:`TimedOut` for ``step`` (a parallel
  branch reports under its own name) and moves the cursor; after a :class:`Wait`, report
  ``Ok()`` (``Ok(output=payload)`` for a resumed wait). Raises :class:`StaleOutcome` (409)
  for an outcome the step is not waiting for.
- :class:`WorkflowRunStore` (:func:`open_workflow_store` over the runtime's state backend):
  ``create``/``get``/``save`` with optimistic concurrency on ``WorkflowRun.version``.
- An executor decides approvals through ``resume_approval(run, outcome)``
  (:class:`WorkflowExecutor`): locally it applies the outcome and drives the run on; on
  AWS it sends the stored task token's success or failure.
"""

from astromesh.workflows.actions import (
    ACTION,
    OUTCOME,
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
from astromesh.workflows.interpreter import (
    StaleOutcome,
    apply_outcome,
    due_outcome,
    next_action,
    start_run,
)
from astromesh.workflows.run import (
    PendingApproval,
    StepState,
    StepStatus,
    WorkflowRun,
    WorkflowStatus,
)

__all__ = [
    "ACTION",
    "OUTCOME",
    "Action",
    "Approved",
    "AwaitApproval",
    "CallTool",
    "Error",
    "Finish",
    "Ok",
    "Outcome",
    "Parallel",
    "PendingApproval",
    "Rejected",
    "RunAgent",
    "StaleOutcome",
    "StepState",
    "StepStatus",
    "TimedOut",
    "Wait",
    "WorkflowRun",
    "WorkflowStatus",
    "apply_outcome",
    "due_outcome",
    "next_action",
    "start_run",
]
