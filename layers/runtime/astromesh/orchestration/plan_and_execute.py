"""Plan and execute: a planner writes a plan, its steps run (in parallel when independent),
then a synthesis step answers from their results.

YAML (``spec.orchestration``)::

    pattern: plan_and_execute
    max_replans: 2            # re-plans after a failed step (default 2; 0 = fail at once)
    tool_calling: auto        # how the plan is asked for: auto | native | text
    max_iterations: 10        # each round of tool steps uses one iteration
    timeout_seconds: 120

Roles (``spec.model.roles``; each falls back to the default candidates when not declared):
``planner`` writes the plan, ``worker`` carries out steps without a tool, ``synthesizer``
writes the answer.

The plan is structured output (see :mod:`astromesh.orchestration.structured`), validated::

    {"steps": [{"id": "a", "task": "...", "depends_on": [], "tool": "search",
                "arguments": {"query": "..."}}, ...]}

ids are unique, ``depends_on`` names existing steps, there is no cycle, a ``tool`` is one of
this agent's permitted tools (``type: agent`` tools included: the step is then a child run)
and its ``arguments`` match the tool's schema. An invalid plan is sent back once with the
problem, then the run fails (code ``invalid_plan``).

Each round, every step whose dependencies are done is ready: ready steps without a tool are
``worker`` model calls made concurrently within the step; ready steps with a tool are one
``Act`` (their calls run concurrently). A failed step triggers a re-plan with the failure and
the results so far in the planner's prompt; past ``max_replans`` the run fails (code
``plan_failed``) naming the step and its error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from astromesh.errors import AstromeshError
from astromesh.models.types import Message, ToolCall
from astromesh.orchestration.base import Act, Decision, Fail, Finish, Pattern, StepContext
from astromesh.orchestration.common import system_messages, with_system
from astromesh.orchestration.plan import Plan, PlanItem
from astromesh.orchestration.state import PatternState
from astromesh.orchestration.structured import StructuredOutputInvalid, ask_structured
from astromesh.runs.state import ActionResult, RunState

DEFAULT_MAX_REPLANS = 2

PLANNER_INSTRUCTION = (
    "You are the planner. Break the user's request into the fewest steps that answer it. "
    "Give each step a short unique id and a task; list in depends_on the ids of the steps "
    "whose results it needs (steps without dependencies run in parallel). A step may name one "
    "of the tools below in 'tool' with its 'arguments'; a step without a tool is done by a "
    "worker model that sees the results of its dependencies. Do not answer the request "
    "yourself: a final step will answer from the results."
)
WORKER_INSTRUCTION = "You carry out one step of a plan. Reply with the step's result only."
SYNTHESIS_INSTRUCTION = (
    "Answer the user's request from the results of the plan's steps below. Use only what they "
    "support."
)


class _Item(BaseModel):
    """A plan step with its progress."""

    item: PlanItem
    status: Literal["pending", "running", "done", "failed"] = "pending"
    result: str | None = None


class _State(PatternState):
    items: list[_Item] = Field(default_factory=list)
    replans: int = 0
    calls: dict[str, str] = Field(default_factory=dict)
    """Tool call id -> step id, for the round awaiting results."""
    earlier: list[dict[str, str]] = Field(default_factory=list)
    """Results of steps completed under earlier plans (task, result), kept for synthesis."""
    conversation: int = 0
    """How many of ``run.messages`` are the conversation itself (system, history, query)."""


class PlanAndExecutePattern(Pattern):
    name = "plan_and_execute"

    def __init__(self, *, max_replans: int | None = None, tool_calling: str = "auto") -> None:
        self.max_replans = DEFAULT_MAX_REPLANS if max_replans is None else max_replans
        self.tool_calling = tool_calling

    async def step(self, run: RunState, ctx: StepContext) -> Decision:
        state = _State.load(run)
        try:
            if not state.items:
                state.conversation = len(run.messages)
                await self._plan(run, ctx, state, failure=None)
            while True:
                failed = [entry for entry in state.items if entry.status == "failed"]
                if failed:
                    if state.replans >= self.max_replans:
                        entry = failed[0]
                        return Fail(
                            f"plan step {entry.item.id!r} ({entry.item.task}) failed after "
                            f"{state.replans} re-plan(s): {entry.result}",
                            code="plan_failed",
                        )
                    state.replans += 1
                    await self._plan(run, ctx, state, failure=failed)
                    continue
                ready = _ready(state)
                if not ready:
                    return await self._synthesize(run, ctx, state)
                await self._run_workers(run, ctx, state, [e for e in ready if not e.item.tool])
                calls = self._tool_calls(state, [e for e in ready if e.item.tool])
                if calls:
                    run.messages.append(Message.assistant("", tool_calls=calls))
                    return Act(calls)
        except StructuredOutputInvalid as exc:
            return Fail(exc.message, code=exc.code)
        finally:
            state.save(run)

    # -- planning ------------------------------------------------------------------------------

    async def _plan(
        self, run: RunState, ctx: StepContext, state: _State, *, failure: list[_Item] | None
    ) -> None:
        messages = with_system(
            run.messages[: state.conversation], f"{PLANNER_INSTRUCTION}\n\n{_tool_list(ctx)}"
        )
        if failure:
            messages.append(Message.user(_replan_request(state, failure)))
            state.earlier += [
                {"task": e.item.task, "result": e.result or ""}
                for e in state.items
                if e.status == "done"
            ]
        plan = await ask_structured(
            self,
            run,
            ctx,
            messages,
            Plan,
            role="planner",
            what="the plan",
            code="invalid_plan",
            check=lambda plan: _tool_problems(ctx, plan),
            mode=self.tool_calling,
        )
        state.items = [_Item(item=item) for item in plan.steps]
        state.calls = {}
        run.record(
            "plan",
            replan=state.replans,
            steps=[i.model_dump(exclude_none=True) for i in plan.steps],
        )
        run.messages.append(Message.assistant(plan.model_dump_json(exclude_none=True)))

    # -- executing -----------------------------------------------------------------------------

    async def _run_workers(
        self, run: RunState, ctx: StepContext, state: _State, entries: list[_Item]
    ) -> None:
        """Steps without a tool: concurrent ``worker`` calls within this step."""
        if not entries:
            return
        replies = await asyncio.gather(
            *(
                self.call_model(
                    run,
                    ctx,
                    [
                        *with_system(system_messages(run), WORKER_INSTRUCTION),
                        Message.user(_worker_request(run, state, entry)),
                    ],
                    role="worker",
                    stream_tokens=False,
                )
                for entry in entries
            ),
            return_exceptions=True,
        )
        for entry, reply in zip(entries, replies, strict=True):
            if isinstance(reply, AstromeshError):  # a failed step is re-planned, not fatal
                entry.status, entry.result = "failed", reply.message
            elif isinstance(reply, BaseException):
                raise reply
            else:
                entry.status, entry.result = "done", reply.content
            run.record(
                "plan_step", id=entry.item.id, ok=entry.status == "done", result=entry.result
            )

    def _tool_calls(self, state: _State, entries: list[_Item]) -> list[ToolCall]:
        calls = []
        for entry in entries:
            call = ToolCall(
                id=f"plan{state.replans}_{entry.item.id}",
                name=entry.item.tool or "",
                arguments=entry.item.arguments or {},
            )
            entry.status = "running"
            state.calls[call.id] = entry.item.id
            calls.append(call)
        return calls

    def observe(self, run: RunState, results: Sequence[ActionResult]) -> None:
        super().observe(run, results)
        state = _State.load(run)
        by_id = {entry.item.id: entry for entry in state.items}
        for result in results:
            entry = by_id[state.calls.pop(result.call_id)]
            entry.status = "done" if result.ok else "failed"
            entry.result = result.content
            run.record("plan_step", id=entry.item.id, ok=result.ok, result=result.content)
        state.save(run)

    # -- answering -----------------------------------------------------------------------------

    async def _synthesize(self, run: RunState, ctx: StepContext, state: _State) -> Finish:
        results = [
            *state.earlier,
            *({"task": e.item.task, "result": e.result or ""} for e in state.items),
        ]
        lines = "\n".join(f"- {r['task']}: {r['result']}" for r in results)
        messages = [
            *with_system(system_messages(run), SYNTHESIS_INSTRUCTION),
            Message.user(f"Request: {run.query}\n\nResults:\n{lines}"),
        ]
        response = await self.call_model(run, ctx, messages, role="synthesizer")
        run.messages.append(Message.assistant(response.content))
        return Finish(response.content)


def _ready(state: _State) -> list[_Item]:
    done = {e.item.id for e in state.items if e.status == "done"}
    return [e for e in state.items if e.status == "pending" and set(e.item.depends_on) <= done]


def _tool_list(ctx: StepContext) -> str:
    tools = ctx.agent.tools.definitions()
    if not tools:
        return "There are no tools: every step is done by a worker."
    lines = ["Tools:"]
    for tool in tools:
        schema = json.dumps(tool.parameters.get("properties", {}), ensure_ascii=False)
        lines.append(f"- {tool.name}: {tool.description} Arguments: {schema}")
    return "\n".join(lines)


def _tool_problems(ctx: StepContext, plan: Plan) -> str | None:
    """Tools the agent cannot call, or arguments their schemas refuse."""
    problems: list[str] = []
    for item in plan.steps:
        if item.tool is None:
            continue
        tool = ctx.agent.tools.get(item.tool)
        if tool is None or not ctx.agent.tools.is_allowed(item.tool):
            known = ", ".join(t.name for t in ctx.agent.tools.available()) or "none"
            problems.append(f"step {item.id!r}: unknown tool {item.tool!r} (tools: {known})")
            continue
        errors = tool.argument_errors(item.arguments or {})
        if errors:
            problems.append(f"step {item.id!r}: arguments for {item.tool!r}: {'; '.join(errors)}")
    return "; ".join(problems) or None


def _worker_request(run: RunState, state: _State, entry: _Item) -> str:
    by_id = {e.item.id: e for e in state.items}
    parts = [f"Overall request: {run.query}", f"Your step: {entry.item.task}"]
    if entry.item.depends_on:
        parts.append(
            "Results of the steps it depends on:\n"
            + "\n".join(
                f"- {by_id[d].item.task}: {by_id[d].result or ''}" for d in entry.item.depends_on
            )
        )
    return "\n\n".join(parts)


def _replan_request(state: _State, failed: list[_Item]) -> str:
    done = [e for e in state.items if e.status == "done"]
    lines = ["The previous plan failed."]
    lines += [f"Step {e.item.id!r} ({e.item.task}) failed: {e.result}" for e in failed]
    if done or state.earlier:
        lines.append("Results obtained so far (do not redo them):")
        lines += [f"- {r['task']}: {r['result']}" for r in state.earlier]
        lines += [f"- {e.item.task}: {e.result}" for e in done]
    lines.append("Write a new plan for what remains.")
    return "\n".join(lines)
