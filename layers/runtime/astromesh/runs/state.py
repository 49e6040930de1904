"""The state of one run: everything the step loop needs, held by id in a :class:`RunStore`.

A run is a small JSON document. The local executor keeps it in memory between steps and
saves it at each boundary; the Step Functions executor loads and saves it around every
Lambda task, which is why the state machine's payloads only carry the run id.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, PrivateAttr

from astromesh.models.types import Message, ToolCall, Usage
from astromesh.runs.growing import GrowingList, growing
from astromesh.runs.trace import RunTrace
from astromesh.runs.usage import ModelCall
from astromesh.text_boundary import RepairedStr, dump_json


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_run_id() -> str:
    return f"run_{uuid.uuid4().hex}"


class RunStatus(StrEnum):
    RUNNING = "running"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        return self not in (RunStatus.RUNNING, RunStatus.REQUIRES_ACTION)


class StepRecord(BaseModel):
    """One entry of a run's ``steps``: a model call, a tool call, a limit hit, a guardrail verdict.

    ``type`` is what happened; ``data`` holds its details (kept JSON-serialisable so the same
    record goes to the REST response, the SQLite store and a Step Functions run).
    """

    index: int
    iteration: int
    type: str
    started_at: datetime = Field(default_factory=utcnow)
    duration_ms: float = 0.0
    data: dict[str, Any] = Field(default_factory=dict)


class UsageLine(BaseModel):
    """Usage of one (provider, model, role): the upstream ``usage.by_model[]`` entry."""

    provider: str
    model: str
    role: str = "default"
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    estimated: bool = False


class RunUsage(BaseModel):
    """Token and cost totals of a run, shaped like upstream's run response ``usage``."""

    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    model: str | None = None
    by_model: list[UsageLine] = Field(default_factory=list)

    def add(self, *, provider: str, model: str, role: str, usage: Usage, cost: float) -> None:
        """Count one model call into the totals and into its ``by_model`` line."""
        self.tokens_in += usage.tokens_in
        self.tokens_out += usage.tokens_out
        self.cost += cost
        self.model = model
        for line in self.by_model:
            if (line.provider, line.model, line.role) == (provider, model, role):
                break
        else:
            line = UsageLine(provider=provider, model=model, role=role)
            self.by_model.append(line)
        line.calls += 1
        line.tokens_in += usage.tokens_in
        line.tokens_out += usage.tokens_out
        line.cost += cost
        line.estimated = line.estimated or usage.estimated

    def add_calls(self, calls: list[ModelCall]) -> None:
        """Count model calls made outside the pattern's steps (see :mod:`astromesh.runs.usage`)."""
        for call in calls:
            self.add(
                provider=call.provider,
                model=call.model,
                role=call.role,
                usage=call.usage,
                cost=call.cost,
            )


class ActionResult(BaseModel):
    """The outcome of one action (a tool call), fed back to the pattern by ``observe``."""

    call_id: str
    name: str
    ok: bool
    content: RepairedStr
    duration_ms: float = 0.0
    truncated: bool = False
    """``content`` is only a preview; the full text is in the run store (``get_results``)."""
    guardrails: list[dict[str, Any]] = Field(default_factory=list)
    """The ``tool_results`` guardrails' verdicts that redacted or withheld ``content``, as
    ``guardrail`` step data. They travel with the result because on Step Functions the
    process that screens it (the tool executor) is not the one that records it (observe)."""
    model_calls: list[ModelCall] = Field(default_factory=list)
    """Model calls the tool made (a summarising tool), counted into the run's usage when the
    call is recorded: they travel with the result for the same reason as ``guardrails``."""
    spans: list[dict[str, Any]] = Field(default_factory=list)
    """Trace spans the call recorded in a tool executor (its ``execute_tool`` span and what
    ran under it), kept with the run when the call is recorded: same reason again."""

    def model_dump_json(self, **kwargs: Any) -> str:
        """JSON for the stores, always valid text (:func:`~astromesh.text_boundary.dump_json`)."""
        return dump_json(self, super().model_dump_json, **kwargs)


class RunState(BaseModel):
    """A run, from ``prepare`` to ``finalize``.

    ``version`` implements optimistic concurrency: a store only accepts a save whose version
    matches what it holds, then increments it, so two writers never both win.
    """

    id: str = Field(default_factory=new_run_id)
    agent: str
    session_id: str = "default"
    namespace: str = "default"
    tenant: str = "default"
    """Whose run this is: the API key's tenant. Memory and run access are scoped by it."""
    query: str
    context: dict[str, Any] | None = None
    status: RunStatus = RunStatus.RUNNING
    iteration: int = 0
    # GrowingList: a save knows these only grew without comparing what they hold (see
    # astromesh.runs.growing); still a list to everything else.
    messages: Annotated[list[Message], AfterValidator(growing)] = Field(default_factory=GrowingList)
    steps: Annotated[list[StepRecord], AfterValidator(growing)] = Field(default_factory=GrowingList)
    pending_actions: list[ToolCall] = Field(default_factory=list)
    results: list[ActionResult] = Field(default_factory=list)
    answer: str | None = None
    error: str | None = None
    usage: RunUsage = Field(default_factory=RunUsage)
    data: dict[str, Any] | None = None
    chain: dict[str, Any] | None = None
    """Upstream's ``chain`` block once the run's ``spec.chain`` ran (``astromesh.chains``):
    ``{run_id, status, mode, links}``; ``None`` for an agent without a chain."""
    pattern_state: dict[str, Any] = Field(default_factory=dict)
    """JSON state a pattern keeps between steps (a plan, a stage index, the active agent).

    Patterns must keep everything here, never on themselves: on Step Functions every step
    runs in a fresh Lambda invocation that only has the stored run."""
    decision: dict[str, Any] | None = None
    """The last step's decision (``{"type": "act" | "finish" | "fail", ...}``), persisted so an
    executor that resumes in another process knows what comes next."""
    parent_run_id: str | None = None
    depth: int = 0
    """How deep in agent-calls-agent this run is (0 for a run a caller started)."""
    trace: RunTrace | None = None
    """The run's trace context and recorded spans (:mod:`astromesh.telemetry`); set when the
    run is screened, before its first write."""
    version: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    _journal: Any = PrivateAttr(default=None)
    """What the store that last wrote or read this object holds of its growing lists, so its
    next save appends instead of rewriting (:class:`astromesh.stores._journal.Snapshot`)."""

    def model_dump_json(self, **kwargs: Any) -> str:
        """JSON for the stores, always valid text: a field assigned invalid text during the
        run (an answer, an error quoting what a tool returned) is repaired rather than
        failing the save (see :func:`astromesh.text_boundary.dump_json`)."""
        return dump_json(self, super().model_dump_json, **kwargs)

    def record(self, type_: str, *, duration_ms: float = 0.0, **data: Any) -> StepRecord:
        """Append a step record and return it."""
        step = StepRecord(
            index=len(self.steps),
            iteration=self.iteration,
            type=type_,
            duration_ms=round(duration_ms, 3),
            data=data,
        )
        self.steps.append(step)
        return step
