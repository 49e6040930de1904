"""What the interpreter asks an executor to do, and what the executor reports back.

Both are small JSON-serialisable models (``model_dump(mode="json")`` /
``Action.model_validate``) so the same decision travels through a Python call locally and
through a Step Functions state's payload on AWS. ``kind`` tells them apart.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter


class RunAgent(BaseModel):
    """Run ``agent`` on ``input`` as a child agent run (``attempt`` is 1-based)."""

    kind: Literal["run_agent"] = "run_agent"
    step: str
    agent: str
    input: str
    attempt: int = 1
    timeout_seconds: float | None = None


class CallTool(BaseModel):
    """Call the builtin ``tool`` with ``arguments``."""

    kind: Literal["call_tool"] = "call_tool"
    step: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    attempt: int = 1
    timeout_seconds: float | None = None


class Wait(BaseModel):
    """Wait ``seconds`` (a wait step, or a retry's backoff when ``retry`` is true), then
    report ``ok``. ``seconds`` is ``None`` for a wait that lasts until resumed
    (``timeout_seconds`` bounds it; past it, report ``timed_out``)."""

    kind: Literal["wait"] = "wait"
    step: str
    seconds: float | None
    until: str | None = None
    retry: bool = False
    timeout_seconds: float | None = None


class AwaitApproval(BaseModel):
    """Suspend until a person approves or rejects (or ``timeout_seconds`` passes)."""

    kind: Literal["await_approval"] = "await_approval"
    step: str
    prompt: str
    approver: str | None = None
    timeout_seconds: float | None = None


class Parallel(BaseModel):
    """Do every branch action at once; report each branch's outcome under its own name."""

    kind: Literal["parallel"] = "parallel"
    step: str
    branches: list[RunAgent | CallTool | Wait] = Field(default_factory=list)


class Finish(BaseModel):
    """The run is over: ``status`` (completed, failed, rejected, timed_out) and ``output``."""

    kind: Literal["finish"] = "finish"
    status: str
    output: Any = None
    error: str | None = None


Action = Annotated[
    RunAgent | CallTool | Wait | AwaitApproval | Parallel | Finish, Field(discriminator="kind")
]
ACTION = TypeAdapter(Action)
"""``ACTION.validate_python(payload)`` reads an action back from a state's payload."""


class Ok(BaseModel):
    kind: Literal["ok"] = "ok"
    output: Any = None
    data: Any = None
    child_run_id: str | None = None


class Error(BaseModel):
    kind: Literal["error"] = "error"
    type: str = "error"
    message: str


class Approved(BaseModel):
    kind: Literal["approved"] = "approved"
    approver: str
    comment: str | None = None


class Rejected(BaseModel):
    kind: Literal["rejected"] = "rejected"
    approver: str
    comment: str | None = None


class TimedOut(BaseModel):
    kind: Literal["timed_out"] = "timed_out"


Outcome = Annotated[Ok | Error | Approved | Rejected | TimedOut, Field(discriminator="kind")]
OUTCOME = TypeAdapter(Outcome)
