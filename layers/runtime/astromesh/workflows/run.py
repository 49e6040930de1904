"""The persisted record of one workflow run: what the interpreter reads and writes.

Everything a run needs to go on after any pause (a wait, an approval, a server restart, a
Step Functions task boundary) is in this one JSON document: the workflow it runs (a copy of
the document, so a run started before a workflow was changed or removed finishes as it
began), the trigger, each step's state and the cursor. ``version`` is the store's optimistic
concurrency counter: two resumes of the same run cannot both advance it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_workflow_run_id() -> str:
    return f"wfr_{uuid.uuid4().hex}"


class WorkflowStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        return self in (
            WorkflowStatus.COMPLETED,
            WorkflowStatus.FAILED,
            WorkflowStatus.REJECTED,
            WorkflowStatus.TIMED_OUT,
        )

    @property
    def is_suspended(self) -> bool:
        """Nothing runs for the run until a timer or a person moves it on."""
        return self in (WorkflowStatus.WAITING, WorkflowStatus.AWAITING_APPROVAL)


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    BACKOFF = "backoff"
    """Failed an attempt; waits ``retry_at`` before the next."""
    WAITING = "waiting"
    AWAITING_APPROVAL = "awaiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"

    @property
    def is_done(self) -> bool:
        return self in (
            StepStatus.SUCCEEDED,
            StepStatus.FAILED,
            StepStatus.SKIPPED,
            StepStatus.REJECTED,
            StepStatus.TIMED_OUT,
        )


class StepState(BaseModel):
    """One step's (or parallel branch's) state. ``output`` is what templates read as
    ``steps.<name>.output`` (an agent's answer, a tool's result, a switch's ``goto``, an
    approval's decision); ``data`` is an agent's structured output (its output_schema)."""

    status: StepStatus = StepStatus.PENDING
    input: Any = None
    """An agent step's rendered ``input`` or a tool step's rendered ``arguments``: rendered
    once when the step is entered, so every attempt sends the same."""
    output: Any = None
    data: Any = None
    error: str | None = None
    error_type: str | None = None
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    retry_at: datetime | None = None
    child_run_id: str | None = None


class PendingApproval(BaseModel):
    """The question a suspended run waits on. ``task_token`` is the Step Functions task
    token to answer (``None`` when the run is local)."""

    step: str
    prompt: str
    approver: str | None = None
    requested_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    task_token: str | None = None
    notified_at: datetime | None = None
    """When the step's ``notify`` was attempted (``None``: not yet, or no ``notify``)."""
    notification: str | None = None
    """How that went: ``delivered``, or why not (see :mod:`astromesh.workflows.notify`)."""


class WorkflowRun(BaseModel):
    """One run of a workflow; see the module doc."""

    id: str = Field(default_factory=new_workflow_run_id)
    workflow: str
    namespace: str = "default"
    tenant: str = "default"
    origin: str = "file"
    """``file`` (the agents folder's) or ``registered`` (posted over the API: its agents
    and tools run under the registration policy)."""
    document: dict[str, Any] = Field(default_factory=dict)
    status: WorkflowStatus = WorkflowStatus.RUNNING
    trigger: dict[str, Any] = Field(default_factory=dict)
    steps: dict[str, StepState] = Field(default_factory=dict)
    cursor: str | None = None
    """The top-level step the run is at (``None`` once it has passed the last)."""
    wake_at: datetime | None = None
    """When a waiting run is due (a wait's end, a retry's, an approval's expiry)."""
    pending_approval: PendingApproval | None = None
    transitions: int = 0
    output: Any = None
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    deadline: datetime | None = None
    version: int = 0
    executor: str = "local"
    """Which executor drives the run (``local`` or ``stepfunctions``): the one that is
    asked to resume it after an approval."""
    execution_arn: str | None = None
    task_token: str | None = None
    """The Step Functions task token a wait until resumed waits on (an approval keeps its
    own in ``pending_approval``); ``None`` when the run is local."""
