"""Supervisor: each step a supervisor model delegates one task to a worker agent, or answers.

YAML (``spec.orchestration``)::

    pattern: supervisor
    workers: [researcher, writer]   # agents defined in the same folder; when left out, the
                                    # agents the agent's `type: agent` tools call (upstream)
    max_iterations: 10              # each delegation uses one iteration
    timeout_seconds: 120

The supervisor's model (role ``supervisor``, else the default candidates) returns a
structured decision, validated with pydantic::

    {"action": "delegate", "worker": "researcher", "task": "..."}
    {"action": "finish", "answer": "..."}

A delegation is an ``Act`` on the worker's agent tool (added automatically at build time): the
worker runs as a child run and its answer (or its failure) is shown to the supervisor as the
next user message. An invalid decision is sent back once with the problem, then the run fails
(code ``invalid_decision``); an unknown worker is fed back as an error once, and a second one
fails the run (code ``unknown_worker``). The workers are listed in the supervisor's system
prompt with their ``identity.description``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from astromesh.models.types import Message
from astromesh.orchestration.base import Act, Decision, Fail, Finish, Pattern, StepContext
from astromesh.orchestration.common import agent_call, with_system
from astromesh.orchestration.state import PatternState
from astromesh.orchestration.structured import StructuredOutputInvalid, ask_structured
from astromesh.runs.state import ActionResult, RunState

ROLE = "supervisor"


class SupervisorDecision(BaseModel):
    """What the supervisor does next."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["delegate", "finish"]
    worker: str | None = Field(None, description="delegate: the worker's name")
    task: str | None = Field(None, description="delegate: what the worker must do")
    answer: str | None = Field(None, description="finish: the final answer to the user")

    @model_validator(mode="after")
    def _fields_for_action(self) -> Self:
        if self.action == "delegate" and not (self.worker and self.task):
            raise ValueError("'delegate' needs both 'worker' and 'task'")
        if self.action == "finish" and self.answer is None:
            raise ValueError("'finish' needs 'answer'")
        return self


class _State(PatternState):
    unknown_workers: int = 0
    delegations: dict[str, str] = Field(default_factory=dict)
    """Call id -> worker, for the delegation awaiting its result."""


class SupervisorPattern(Pattern):
    name = "supervisor"

    def __init__(self, workers: Sequence[str]) -> None:
        self.workers = list(workers)

    async def step(self, run: RunState, ctx: StepContext) -> Decision:
        state = _State.load(run)
        while True:
            try:
                decision = await ask_structured(
                    self,
                    run,
                    ctx,
                    with_system(run.messages, self._instructions(ctx)),
                    SupervisorDecision,
                    role=ROLE,
                    what="the supervisor's decision",
                    code="invalid_decision",
                )
            except StructuredOutputInvalid as exc:
                return Fail(exc.message, code=exc.code)
            run.messages.append(Message.assistant(decision.model_dump_json(exclude_none=True)))
            if decision.action == "finish":
                return Finish(decision.answer or "")
            worker, task = decision.worker or "", decision.task or ""
            worker = self._by_tool_name(ctx, worker)
            if worker not in self.workers:
                state.unknown_workers += 1
                state.save(run)
                error = f"unknown worker {worker!r}; the workers are: {', '.join(self.workers)}"
                run.record("delegate", worker=worker, task=task, ok=False, error=error)
                if state.unknown_workers > 1:
                    return Fail(
                        f"the supervisor chose an unknown worker again: {error}",
                        code="unknown_worker",
                    )
                run.messages.append(Message.user(f"Error: {error}. Choose one of them."))
                continue
            call = agent_call(ctx, worker, task, call_id=f"delegate_{run.iteration}")
            state.delegations = {call.id: worker}
            state.save(run)
            run.record("delegate", worker=worker, task=task, ok=True)
            return Act([call])

    def observe(self, run: RunState, results: Sequence[ActionResult]) -> None:
        """Worker results go back to the supervisor as text (it was offered no worker tools)."""
        state = _State.load(run)
        for result in results:
            worker = state.delegations.get(result.call_id, result.name)
            if result.ok:
                run.messages.append(
                    Message.user(f"Result from worker '{worker}':\n{result.content}")
                )
            else:
                run.messages.append(Message.user(f"Worker '{worker}' failed: {result.content}"))
        state.delegations = {}
        state.save(run)

    def _by_tool_name(self, ctx: StepContext, worker: str) -> str:
        """The worker a name means: a worker's own name, or the name of the agent tool that
        calls it (upstream's supervisors delegate by tool name: ``researcher`` for a tool
        calling ``research-agent``)."""
        if worker in self.workers:
            return worker
        for name in self.workers:
            tool = ctx.agent.tools.agent_tool(name)
            if tool is not None and tool.name == worker:
                return name
        return worker

    def _instructions(self, ctx: StepContext) -> str:
        lines = [
            "You are a supervisor. Each turn, either delegate one task to one of the workers "
            "below and wait for its result, or finish with the final answer for the user.",
            "Workers:",
        ]
        for worker in self.workers:
            tool = ctx.agent.tools.agent_tool(worker)
            lines.append(f"- {worker}: {tool.description}" if tool else f"- {worker}")
        return "\n".join(lines)
