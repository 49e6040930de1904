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

The names below are imported on first use (the package's ``__getattr__``): a Lambda handler
importing one module of the package (``workflows.stepfunctions.worker``) does not build the
actions' and runs' models at its module load (docs/performance.md, "Lazy imports").
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS = {
    "ACTION": "actions",
    "OUTCOME": "actions",
    "Action": "actions",
    "Approved": "actions",
    "AwaitApproval": "actions",
    "CallTool": "actions",
    "Error": "actions",
    "Finish": "actions",
    "Ok": "actions",
    "Outcome": "actions",
    "Parallel": "actions",
    "Rejected": "actions",
    "RunAgent": "actions",
    "TimedOut": "actions",
    "Wait": "actions",
    "StaleOutcome": "interpreter",
    "apply_outcome": "interpreter",
    "due_outcome": "interpreter",
    "next_action": "interpreter",
    "start_run": "interpreter",
    "PendingApproval": "run",
    "StepState": "run",
    "StepStatus": "run",
    "WorkflowRun": "run",
    "WorkflowStatus": "run",
}

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


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
