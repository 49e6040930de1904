"""The execution pipeline's stages: prepare, step, act, observe, finalize.

Each stage is one named, traced function over a :class:`RunState`. Executors call them in
the order of docs/architecture.md §4 (in-process here; as Lambda tasks on Step Functions
later), so a stage must not keep anything outside the run state between calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

from astromesh.agent import Agent
from astromesh.chains.run import run_chain
from astromesh.errors import AstromeshError
from astromesh.guardrails import (
    GuardrailBlocked,
    Side,
    Verdict,
    guard_budget,
    guard_input,
    guard_output,
    guard_tool_result,
    record_tool_result,
    reserve_budget,
    run_spend,
    settle_budget,
)
from astromesh.memory.context import ContextBuilder
from astromesh.memory.episodic import Episode
from astromesh.models.types import Message, ToolCall
from astromesh.orchestration.base import (
    Act,
    Decision,
    Fail,
    Finish,
    MessageResolver,
    StepContext,
    decision_from_dict,
    decision_to_dict,
)
from astromesh.runs.events import EventSink, RunEvent
from astromesh.runs.growing import GrowingList
from astromesh.runs.state import ActionResult, RunState, RunStatus, utcnow
from astromesh.runs.usage import counting
from astromesh.structured.answer import OUTPUT_INVALID, shape
from astromesh.structured.settle import settle_answer
from astromesh.telemetry import genai, operation, stage
from astromesh.telemetry.scope import keep_spans, run_scope
from astromesh.tools.base import ChildRunner, ToolContext
from astromesh.tools.client import pause_for_client, split_client_calls

logger = logging.getLogger(__name__)


class ChildRunStarter(Protocol):
    """Starts agent ``name`` with ``query`` as a child of ``parent`` and waits for it:
    ``(parent, name, query, key, context=...) -> finished child run``. ``key`` names the child
    within the parent (its tool call and the child's number in it), so a repeated call of the
    same tool call (a retried Lambda) finds the child the first attempt started instead of
    starting another; ``context`` goes over the parent's. Supplied by the runtime to the
    executor."""

    def __call__(
        self,
        parent: RunState,
        agent_name: str,
        query: str,
        key: str | None = None,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> Awaitable[RunState]: ...


MAX_PARALLEL_ACTIONS = 8
"""Tool calls of one step run concurrently, at most this many at a time."""

ResultKeeper = Callable[[ActionResult], ActionResult]
"""Keeps an action's full result for the run store (written with the executor's next
checkpoint) and returns what the run document keeps (the result itself, or a preview of a
large one: see ``astromesh.executors.results``)."""


async def screen(run: RunState, agent: Agent) -> None:
    """Apply the agent's input guardrails to a run that is not stored yet.

    Every place that creates a run calls it right before the run's first write
    (``AgentRuntime.create_run`` and ``run_child``, ``StepFunctionsExecutor.submit``), so no
    store, WAL or log ever holds the query or context as the caller sent them when a
    guardrail redacts or blocks them (see :func:`astromesh.guardrails.chain.guard_input`).

    A blocked input does not raise here: the run is still created, holding only the
    placeholder, with a ``fail`` decision (code ``guardrail_blocked``) that ends it on its
    first stage, in-process (``prepare`` raises it) or on Step Functions (the driver's
    ``step`` answers it), so the caller gets a failed run with the guardrail's message as
    for any other block.
    """
    # The run's trace starts here (under the caller's span, if any), so its first write holds
    # the trace context every later process continues.
    with run_scope(run, agent):
        with stage("screen_input", run_id=run.id, agent=agent.name):
            try:
                await guard_input(run, agent.guardrails)
            except GuardrailBlocked as exc:
                run.decision = decision_to_dict(Fail(exc.message, code=exc.code))
        keep_spans(run)


def _blocked_at_intake(run: RunState) -> GuardrailBlocked | None:
    """The block :func:`screen` stored in the run's decision, raised again by ``prepare``."""
    if run.decision is None or run.decision.get("code") != GuardrailBlocked.code:
        return None
    decision = decision_from_dict(run.decision)
    if not isinstance(decision, Fail):
        return None
    verdict = next(
        (
            s.data
            for s in reversed(run.steps)
            if s.type == "guardrail" and s.data.get("action") == "block"
        ),
        {},
    )
    name = str(verdict.get("name", "input"))
    blocked = Verdict.block(name, str(verdict.get("reason", "")), message=decision.reason)
    return GuardrailBlocked(blocked, Side.INPUT)


async def prepare(run: RunState, agent: Agent, emit: EventSink) -> None:
    """Build the conversation the pattern starts from: system prompt, recalled history, query."""
    with stage("prepare", run_id=run.id, agent=agent.name):
        # First, before the query reaches a model, memory or the next save: a no-op for a run
        # screened before its first write (every run created here); a redaction replaces
        # run.query; a block raises GuardrailBlocked (code guardrail_blocked).
        await guard_input(run, agent.guardrails)
        blocked = _blocked_at_intake(run)
        if blocked is not None:
            raise blocked
        # The agent's MCP servers connect on first use, here (and in step, for a run resumed
        # in a process that has not used them): the system prompt and the recorded tool list
        # need their tools. A server that cannot be reached fails the run (ToolsetUnavailable).
        await agent.tools.ensure_ready()
        await emit(
            RunEvent("status", {"status": "processing", "agent": agent.name, "run_id": run.id})
        )
        started = time.perf_counter()
        key = agent.session_key(run.session_id, run.tenant)
        with operation("astromesh.memory.recall", {"gen_ai.conversation.id": run.session_id}):
            history = await agent.memory.recall(key)
        memories = []
        if agent.semantic is not None:
            with genai.retrieval("semantic_memory"):
                memories = await agent.semantic.recall(key, run.query)
        built = ContextBuilder(
            context_window=agent.context_window, reserve_output=agent.reserve_output
        ).build(
            system=agent.render_system_prompt(run),
            query=run.query,
            history=history,
            memories=memories,
        )
        run.messages = GrowingList(built.messages)  # its saves append in O(1): runs.growing
        run.record(
            "prepare",
            duration_ms=(time.perf_counter() - started) * 1000.0,
            context=built.as_step(),
            history_messages=len(history),
            tools=[tool.name for tool in agent.tools.available()],
        )


def check_limits(run: RunState, agent: Agent) -> Fail | None:
    """The limit that ends the run before its next step, if any."""
    if run.iteration >= agent.max_iterations:
        return Fail(
            f"stopped after max_iterations={agent.max_iterations} without a final answer",
            code="max_iterations",
        )
    if remaining_seconds(run, agent) <= 0:
        return _timed_out(agent)
    budget = guard_budget(run, agent.guardrails)
    if budget is not None:
        return Fail(budget.user_message(Side.OUTPUT), code="cost_limit")
    return None


def _timed_out(agent: Agent) -> Fail:
    return Fail(
        f"stopped after timeout_seconds={agent.timeout_seconds:g}",
        status=RunStatus.TIMED_OUT,
        code="timeout",
    )


def remaining_seconds(run: RunState, agent: Agent) -> float:
    deadline = run.created_at + timedelta(seconds=agent.timeout_seconds)
    return (deadline - utcnow()).total_seconds()


async def step(
    run: RunState, agent: Agent, emit: EventSink, *, resolve: MessageResolver | None = None
) -> Decision:
    """Ask the pattern what to do next, within the run's remaining time.

    ``resolve`` expands large results kept beside the run (``content_ref`` messages) right
    before each model call, so the model sees them whole while the run stays small.

    Provider and configuration failures end the run with a clear reason instead of escaping
    as exceptions: a caller sees ``status: failed`` and ``error``, never a stack trace.
    """
    with stage("step", run_id=run.id, agent=agent.name, iteration=run.iteration):
        # Tools first (a no-op once loaded): the pattern reads their definitions. A Lambda
        # container that did not prepare this run connects the agent's MCP servers here.
        if agent.tools.pending:  # nothing to wait for (or to time) once they are loaded
            try:
                await asyncio.wait_for(
                    agent.tools.ensure_ready(), timeout=max(remaining_seconds(run, agent), 0.001)
                )
            except TimeoutError:
                return _timed_out(agent)
            except AstromeshError as exc:
                return Fail(exc.message, code=exc.code)
        # Shared budgets (cost_limit per session / per agent per day, counted across runs and
        # instances in the ledger): reserve an estimate of this step first, refuse it if a
        # budget is reached, and settle the step's real usage (the run's usage diff) after it,
        # however it ends. See astromesh.guardrails.ledger for the overshoot bound.
        reservation, refused = await reserve_budget(run, agent.guardrails)
        if refused is not None:
            return Fail(refused.user_message(Side.OUTPUT), code="cost_limit")
        before = run_spend(run)
        ctx = StepContext(agent=agent, emit=emit, resolve=resolve)

        try:
            # asyncio.timeout rather than wait_for: the same limit without a task (and its
            # context copy) per step. A final answer is checked against spec.output_schema
            # here, in the step (both executors), with its one repair call inside the same
            # time limit and budget.
            async with asyncio.timeout(max(remaining_seconds(run, agent), 0.001)):
                return await settle_answer(run, ctx, await agent.pattern.step(run, ctx))
        except TimeoutError:
            return _timed_out(agent)
        except AstromeshError as exc:
            return Fail(exc.message, code=exc.code)
        finally:
            await settle_budget(run, agent.guardrails, reservation, before)


async def act(
    run: RunState,
    agent: Agent,
    actions: Sequence[ToolCall],
    emit: EventSink,
    *,
    run_child: ChildRunStarter | None = None,
    keep: ResultKeeper | None = None,
) -> list[ActionResult]:
    """Execute the step's tool calls concurrently (bounded) and record each one.

    ``keep`` takes each full result for the run store; the run records what it returns.

    ``run_child`` lets agent tools start child runs of this run; the id of the child a call
    started is recorded in that call's ``tool_call`` step (``child_run_id``).
    """
    with stage("act", run_id=run.id, agent=agent.name, actions=len(actions)):
        limit = asyncio.Semaphore(MAX_PARALLEL_ACTIONS)
        child_runs: dict[str, str] = {}

        async def one(call: ToolCall) -> ActionResult:
            context = ToolContext(
                run_id=run.id,
                agent=agent.name,
                session_id=run.session_id,
                namespace=run.namespace,
                run_child=_child_runner(run, call.id, run_child, child_runs),
            )
            async with limit:
                await emit(
                    RunEvent(
                        "tool_call", {"id": call.id, "name": call.name, "arguments": call.arguments}
                    )
                )
                with genai.execute_tool(call) as span:
                    with counting() as model_calls:  # a tool's own model calls, if any
                        outcome = await agent.tools.call(call, context)
                    # Screened before anything else sees it: the event, the kept full result
                    # (content_ref), the step record and the span all get the screened text.
                    result = await screen_tool_result(
                        run,
                        agent,
                        ActionResult(
                            call_id=call.id,
                            name=call.name,
                            ok=outcome.ok,
                            content=outcome.content,
                            duration_ms=outcome.duration_ms,
                            model_calls=model_calls,
                        ),
                    )
                    genai.tool_result(span, result)
                await emit(
                    RunEvent(
                        "tool_result",
                        {
                            "id": call.id,
                            "name": call.name,
                            "ok": result.ok,
                            "content": result.content,
                        },
                    )
                )
                return result

        server_calls, client_calls = split_client_calls(actions, agent.tools.available())
        if len(server_calls) == 1:  # the usual step: no task to gather one call through
            results = [await one(server_calls[0])]
        else:
            results = await asyncio.gather(*(one(call) for call in server_calls))
        if keep is not None:
            results = [keep(result) for result in results]
        record_actions(run, agent, server_calls, results, child_runs=child_runs)
        if client_calls:  # the caller runs these; the executor saves and returns the run
            run.results = list(results)
            await pause_for_client(run, client_calls, emit)
        return list(results)


async def screen_tool_result(run: RunState, agent: Agent, result: ActionResult) -> ActionResult:
    """Apply the agent's ``tool_results`` guardrails to one result, as its own traced stage.

    :func:`act` calls it once per result, as soon as the tool returns, in whichever process
    runs the tool (in-process, or the Step Functions tool executor, which stores what this
    returns); so does ``submit_tool_outputs`` for a client tool's output. Nothing downstream
    screens again. A redaction replaces the result; a block replaces it with a neutral
    "withheld" message (see :func:`astromesh.guardrails.chain.guard_tool_result`).
    """
    if not agent.guardrails.tool_results:
        return result
    with stage(
        "screen_tool_result",
        run_id=run.id,
        agent=agent.name,
        tool=result.name,
        call_id=result.call_id,
    ) as span:
        screened = await guard_tool_result(run, agent.guardrails, result)
        actions = [v["action"] for v in screened.guardrails[len(result.guardrails) :]]
        outcome = "block" if "block" in actions else "redact" if actions else "allow"
        span.set_attribute("astromesh.guardrail_action", outcome)
        return screened


def record_actions(
    run: RunState,
    agent: Agent,
    actions: Sequence[ToolCall],
    results: Sequence[ActionResult],
    *,
    child_runs: Mapping[str, str] | None = None,
) -> None:
    """Record each executed call as a ``tool_call`` step (followed by the ``guardrail`` steps
    of the ``tool_results`` verdicts that changed its result) and keep the step's results.

    Split from :func:`act` because on Step Functions the calls run in other processes and
    ``observe`` records them from the results they stored."""
    child_runs = child_runs or {}
    for call, result in zip(actions, results, strict=True):
        run.record(
            "tool_call",
            duration_ms=result.duration_ms,
            id=call.id,
            name=call.name,
            arguments=call.arguments,
            ok=result.ok,
            result=result.content,
            permitted=agent.tools.is_allowed(call.name),
            **({"child_run_id": child_runs[call.id]} if call.id in child_runs else {}),
        )
        record_tool_result(run, result)
        run.usage.add_calls(result.model_calls)
    run.results = list(results)


def _child_runner(
    parent: RunState, call_id: str, starter: ChildRunStarter | None, started: dict[str, str]
) -> ChildRunner | None:
    """The ``run_child`` one tool call gets: starts children of ``parent`` and notes the id of
    the child it started under ``call_id`` (for the call's step record)."""
    if starter is None:
        return None

    number = 0

    async def run_child(
        agent_name: str, query: str, *, context: Mapping[str, Any] | None = None
    ) -> RunState:
        nonlocal number
        number += 1
        child = await starter(parent, agent_name, query, f"{call_id}#{number}", context=context)
        started[call_id] = child.id
        return child

    return run_child


def observe(run: RunState, agent: Agent, results: Sequence[ActionResult]) -> None:
    """Hand results to the pattern and close the iteration.

    A message the pattern built from a truncated result (a preview) gets ``content_ref`` set
    to that result's call id, whatever the pattern's message looks like.
    """
    with stage("observe", run_id=run.id, agent=agent.name):
        appended = len(run.messages)
        agent.pattern.observe(run, results)
        _refer_to_kept_results(run.messages[appended:], results)
        run.pending_actions = []
        run.iteration += 1


def _refer_to_kept_results(messages: Sequence[Message], results: Sequence[ActionResult]) -> None:
    for message in messages:
        for result in results:
            if result.truncated and result.content in message.content:
                message.content_ref = result.call_id
                break


async def screen_answer(run: RunState, agent: Agent, decision: Decision) -> Decision:
    """Apply the output guardrails to a final answer as soon as the pattern gives it.

    The executors call it right after ``step``, before the run is saved with the decision:
    on Step Functions ``step`` stores the decision and ``finalize`` runs in another task, so
    screening only in ``finalize`` would write the unredacted answer (in the decision, the
    last assistant message and the model call's step) to the store first, where a WAL or a
    PostgreSQL row version keeps it. A blocked answer becomes a ``guardrail_blocked`` fail;
    ``finalize`` does not screen an answer screened here again.
    """
    if not isinstance(decision, Finish) or not agent.guardrails.output:
        return decision
    if _answer_screened(run):
        return decision
    with stage("screen_output", run_id=run.id, agent=agent.name):
        checked = await guard_output(run, agent.guardrails, decision.answer)
    if checked.blocked is not None:
        return Fail(checked.blocked.user_message(Side.OUTPUT), code="guardrail_blocked")
    return Finish(checked.text)


def _answer_screened(run: RunState) -> bool:
    return any(s.type == "guardrail" and s.data.get("side") == Side.OUTPUT for s in run.steps)


async def finalize(
    run: RunState,
    agent: Agent,
    decision: Decision,
    emit: EventSink,
    *,
    run_child: ChildRunStarter | None = None,
) -> None:
    """Settle the run's status and answer, write memory back, run the agent's chain (each
    link a child run started with ``run_child``), tell the listener."""
    with stage("finalize", run_id=run.id, agent=agent.name, decision=type(decision).__name__):
        decision = await screen_answer(run, agent, decision)  # a no-op if already screened
        decision = structured_data(run, agent, decision)
        if isinstance(decision, Finish):
            run.status = RunStatus.SUCCEEDED
            run.answer = decision.answer
            key = agent.session_key(run.session_id, run.tenant)
            with (
                operation("astromesh.memory.remember", {"gen_ai.conversation.id": run.session_id}),
                counting() as summaries,  # the summary strategy folds old turns here
            ):
                await agent.memory.remember(key, run.query, decision.answer)
            run.usage.add_calls(summaries)
            if agent.semantic is not None:
                # Scoped to the session: one user's turns must never surface in another's.
                with operation("astromesh.memory.remember_semantic"):
                    await agent.semantic.remember(
                        key, f"Q: {run.query}\nA: {decision.answer}", session_only=True
                    )
            if agent.config.spec.chain is not None and run.chain is None:
                with stage("chain", run_id=run.id, agent=agent.name):
                    run.chain = await run_chain(run, agent, run_child)
        if isinstance(decision, Fail):
            partial = "" if decision.code == "guardrail_blocked" else _partial_answer(run)
            if partial:
                checked = await guard_output(run, agent.guardrails, partial)
                partial = "" if checked.blocked is not None else checked.text
            stop(run, decision, partial)
        elif isinstance(decision, Act):  # pragma: no cover - executors never finalize an Act
            raise TypeError("finalize() needs a Finish or Fail decision")
        if agent.episodic is not None:
            await agent.episodic.record(Episode.from_run(run))
        if run.status is RunStatus.SUCCEEDED:
            if agent.guardrails.screens_output_text and run.answer:
                # Tokens were held back for the output guardrails: send the screened answer.
                await emit(RunEvent("token", {"content": run.answer}))
            await emit(RunEvent("done", done_frame(run)))
        else:
            await emit(
                RunEvent(
                    "error", {"code": run.status.value, "message": run.error, "run_id": run.id}
                )
            )
            await emit(RunEvent("done", done_frame(run)))
        agent.metrics.run_finished(run)
    genai.end_run(run, agent)


def structured_data(run: RunState, agent: Agent, decision: Decision) -> Decision:
    """Set ``run.data`` to the object of a screened final answer (``spec.output_schema``).

    ``step`` checked the answer before the output guardrails screened it; the object is
    parsed again from the screened text, so ``data`` never holds what a guardrail redacted.
    A redaction that breaks the schema (a ``pattern`` the placeholder does not match) fails
    the run as ``output_invalid`` rather than returning data that does not validate.
    """
    schema = agent.config.spec.output_schema
    if schema is None or not isinstance(decision, Finish):
        return decision
    data, problem = shape(decision.answer, schema)
    if problem is not None:
        return Fail(
            f"the answer does not match spec.output_schema after the output guardrails: {problem}",
            code=OUTPUT_INVALID,
        )
    run.data = data
    return decision


def stop(run: RunState, decision: Fail, answer: str) -> None:
    """End ``run`` as ``decision`` says (failed, timed out, cancelled), with ``answer`` as
    what it had, and record why."""
    run.status = decision.status
    run.error = decision.reason
    run.answer = answer
    run.record("stopped", code=decision.code, reason=decision.reason)


def done_frame(run: RunState) -> dict[str, object]:
    """The last frame of a streamed run: what ``POST .../run`` answers, so a streaming client
    gets the structured ``data`` and the ``chain`` block too, not only the text."""
    return {
        "answer": run.answer or "",
        "session_id": run.session_id,
        "run_id": run.id,
        "status": run.status.value,
        "usage": run.usage.model_dump(),
        "data": run.data,
        "chain": run.chain,
    }


def _partial_answer(run: RunState) -> str:
    """The last thing the model said in this run, so a stopped run still returns what it had.

    The search stops at this run's query: the recalled history before it holds earlier
    turns' answers, which must never come back as this run's answer.
    """
    for message in reversed(run.messages):
        if message.role == "user" and message.content == run.query:
            break
        if message.role == "assistant" and message.content:
            return message.content
    return ""
