"""Client tools: tools the *caller* executes (a browser action, a device, a human approval).

The contract, end to end:

1. A ``type: client`` tool is offered to the model like any other (name, description,
   JSON-Schema parameters).
2. When a step's decision calls client tools, the act stage runs only the *other* calls of
   that step (:func:`split_client_calls`), then :func:`pause_for_client` parks the run:
   ``status = requires_action``, ``pending_actions`` = the client calls, ``results`` = the
   results of the step's server-side calls, a ``requires_action`` step is recorded and a
   ``requires_action`` event (``{"run_id", "tool_calls": [{"id", "name", "arguments"}]}``)
   is emitted. The executor saves the run and returns it without ``finalize``.
3. The caller executes the calls and submits ``[{"tool_call_id", "output", "ok"?}]`` to
   :func:`submit_tool_outputs` (the REST endpoint of the channels issue calls it). Every
   pending call needs exactly one output; ``output`` is text or any JSON value.
4. ``submit_tool_outputs`` screens each output with the agent's ``tool_results`` guardrails
   (as ``act`` screens a server tool's result), records the results, feeds the whole step's
   results (server and client, in the order the model asked for them) to ``observe``, saves
   the run with optimistic concurrency (so two racing submissions cannot both resume it) and
   hands it to ``resume``: the executor's loop continues with the next ``step``.

If an act stage that does not know about client tools runs one anyway, :class:`ClientTool`
answers with a failed result saying so: it never pretends to have done the caller's work.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict

from astromesh.errors import ConflictError, ToolError, ValidationFailed
from astromesh.guardrails.chain import record_tool_result
from astromesh.models.types import ToolCall
from astromesh.runs.events import EventSink, RunEvent, discard
from astromesh.runs.state import ActionResult, RunState, RunStatus
from astromesh.text_boundary import Shallow
from astromesh.tools.base import Tool, ToolContext

if TYPE_CHECKING:
    from astromesh.agent import Agent
    from astromesh.stores.base import RunStore

MAX_OUTPUT_CHARS = 1_000_000

Resume = Callable[[RunState], Awaitable[RunState]]
"""Continues a run's loop after its client calls were answered (the executor's ``resume``)."""


class ClientTool(Tool):
    """A tool announced to the model and executed by the caller, never by the runtime."""

    executes_on_client = True

    def __init__(
        self, name: str, *, description: str = "", parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(
            name=name,
            description=description or f"{name} (carried out by the user's application)",
            parameters=parameters or {"type": "object", "properties": {}},
        )

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        raise ToolError(
            f"'{self.name}' is a client tool: the caller executes it, and this run cannot "
            "pause for it here"
        )


def is_client_tool(tool: Tool | None) -> bool:
    return bool(getattr(tool, "executes_on_client", False))


def split_client_calls(
    calls: Sequence[ToolCall], tools: Iterable[Tool]
) -> tuple[list[ToolCall], list[ToolCall]]:
    """``(server_calls, client_calls)`` of one step, each in the model's order.

    ``tools`` are the tools the agent may use (``registry.available()``): a forged call to
    a client tool the agent may not use stays on the server side, where the registry
    refuses it. A client call with invalid arguments also stays there, so the model gets
    the schema error at once instead of the caller getting a malformed request.
    """
    by_name = {tool.name: tool for tool in tools}
    server: list[ToolCall] = []
    client: list[ToolCall] = []
    for call in calls:
        tool = by_name.get(call.name)
        if is_client_tool(tool) and tool is not None and not tool.argument_errors(call.arguments):
            client.append(call)
        else:
            server.append(call)
    return server, client


async def pause_for_client(
    run: RunState, client_calls: Sequence[ToolCall], emit: EventSink = discard
) -> None:
    """Park ``run`` until the caller submits outputs for ``client_calls``.

    ``run.results`` must already hold the results of the step's server-side calls.
    """
    calls = [call.model_dump() for call in client_calls]
    run.status = RunStatus.REQUIRES_ACTION
    run.pending_actions = list(client_calls)
    run.record("requires_action", tool_calls=calls)
    await emit(RunEvent("requires_action", {"run_id": run.id, "tool_calls": calls}))


class ToolOutput(BaseModel):
    """What the caller submits for one pending call."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tool_call_id: str
    output: Annotated[Any, Shallow] = ""
    ok: bool = True

    def content(self) -> str:
        if isinstance(self.output, str):
            return self.output
        return json.dumps(self.output, ensure_ascii=False, default=str)


async def submit_tool_outputs(
    run_id: str,
    outputs: Sequence[ToolOutput | dict[str, Any]],
    *,
    runs: RunStore,
    agent: Agent,
    resume: Resume,
    emit: EventSink = discard,
) -> RunState:
    """Answer a paused run's client calls and continue it.

    Returns:
        whatever ``resume`` returns: the run, finished or paused again.

    Raises:
        NotFoundError: no such run.
        ConflictError: the run is not waiting for tool outputs (finished, running, or
            another submission won the race).
        ValidationFailed: an output for an unknown call, two for one call, a missing one,
            or one longer than :data:`MAX_OUTPUT_CHARS`.
    """
    run = await runs.get(run_id)
    if run.status is not RunStatus.REQUIRES_ACTION:
        raise ConflictError(
            f"run {run_id} is not waiting for tool outputs (status: {run.status.value})"
        )
    answers = _match_outputs(run, [ToolOutput.model_validate(o) for o in outputs])

    from astromesh import pipeline  # imported here: pipeline imports the tools package

    client_results: list[ActionResult] = []
    for call in run.pending_actions:
        answer = answers[call.id]
        # A client's output enters the conversation like any tool result: same screening.
        result = await pipeline.screen_tool_result(
            run,
            agent,
            ActionResult(call_id=call.id, name=call.name, ok=answer.ok, content=answer.content()),
        )
        client_results.append(result)
        run.record(
            "tool_call",
            id=call.id,
            name=call.name,
            arguments=call.arguments,
            ok=result.ok,
            result=result.content,
            permitted=True,
            client=True,
        )
        record_tool_result(run, result)
        await emit(
            RunEvent(
                "tool_result",
                {"id": call.id, "name": call.name, "ok": result.ok, "content": result.content},
            )
        )
    results = _in_model_order(run, [*run.results, *client_results])
    run.status = RunStatus.RUNNING
    run.results = results
    pipeline.observe(run, agent, results)
    run = await runs.save(run)
    return await resume(run)


def _match_outputs(run: RunState, outputs: list[ToolOutput]) -> dict[str, ToolOutput]:
    pending = {call.id for call in run.pending_actions}
    answers: dict[str, ToolOutput] = {}
    problems: list[str] = []
    for output in outputs:
        if output.tool_call_id not in pending:
            problems.append(f"no pending tool call has id {output.tool_call_id!r}")
        elif output.tool_call_id in answers:
            problems.append(f"two outputs for tool call {output.tool_call_id!r}")
        elif len(output.content()) > MAX_OUTPUT_CHARS:
            problems.append(
                f"output for {output.tool_call_id!r} is longer than {MAX_OUTPUT_CHARS} chars"
            )
        else:
            answers[output.tool_call_id] = output
    missing = [call.id for call in run.pending_actions if call.id not in answers]
    if missing:
        problems.append("missing outputs for tool calls " + ", ".join(missing))
    if problems:
        raise ValidationFailed("; ".join(problems))
    return answers


def _in_model_order(run: RunState, results: list[ActionResult]) -> list[ActionResult]:
    """Results sorted as the model listed the calls (the last assistant message's order)."""
    order: list[str] = []
    if run.decision and run.decision.get("type") == "act":
        order = [str(call_id) for call_id in run.decision.get("actions", [])]
    if not order:
        for message in reversed(run.messages):
            if message.tool_calls:
                order = [call.id for call in message.tool_calls]
                break
    rank = {call_id: i for i, call_id in enumerate(order)}
    return sorted(results, key=lambda r: rank.get(r.call_id, len(rank)))
