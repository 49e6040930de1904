"""One protocol for every orchestration pattern (docs/architecture.md §4).

A run is a loop of step -> act -> observe. A pattern is a ``step`` policy: given the run so
far it decides to act (call tools), finish (answer) or fail. Everything else (limits,
parallel tool execution, persistence, streaming) is the executor's job and written once.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from astromesh.models.router import model_deadline
from astromesh.models.types import (
    GenerationParams,
    Message,
    ModelResponse,
    TextDelta,
    ToolCall,
    ToolDefinition,
)
from astromesh.runs.events import EventSink, RunEvent, wants_tokens
from astromesh.runs.state import ActionResult, RunState, RunStatus, utcnow

if TYPE_CHECKING:
    from astromesh.agent import Agent


@dataclass(frozen=True, slots=True)
class Act:
    """Execute these tool calls, then observe their results."""

    actions: list[ToolCall]


@dataclass(frozen=True, slots=True)
class Finish:
    """The run is done; ``answer`` goes to the user."""

    answer: str


@dataclass(frozen=True, slots=True)
class Fail:
    """The run ends without an answer of its own; ``status`` says why (failed, timed out...)."""

    reason: str
    status: RunStatus = RunStatus.FAILED
    code: str = "run_failed"


Decision = Act | Finish | Fail


def decision_to_dict(decision: Decision) -> dict[str, Any]:
    """The JSON form stored in ``RunState.decision`` (actions live in ``pending_actions``)."""
    if isinstance(decision, Act):
        return {"type": "act", "actions": [call.id for call in decision.actions]}
    if isinstance(decision, Finish):
        return {"type": "finish", "answer": decision.answer}
    return {
        "type": "fail",
        "reason": decision.reason,
        "status": decision.status.value,
        "code": decision.code,
    }


def decision_from_dict(data: dict[str, Any], pending: Sequence[ToolCall] = ()) -> Decision:
    """Rebuild a decision stored by :func:`decision_to_dict`."""
    kind = data["type"]
    if kind == "act":
        wanted = set(data["actions"])
        return Act([call for call in pending if call.id in wanted])
    if kind == "finish":
        return Finish(data["answer"])
    return Fail(data["reason"], status=RunStatus(data["status"]), code=data["code"])


MessageResolver = Callable[[Sequence[Message]], Awaitable[Sequence[Message]]]
"""Turns messages into what the model must see: previews of large results (``content_ref``)
expanded to the full text kept beside the run."""


@dataclass(slots=True)
class StepContext:
    """What a pattern may use during a step: the built agent and the event stream.

    ``resolve`` is set by executors whose runs keep large results by reference;
    :meth:`Pattern.call_model` applies it, so patterns never see the difference.
    """

    agent: Agent
    emit: EventSink
    resolve: MessageResolver | None = None


class TokenFilter(Protocol):
    """Decides which streamed text reaches the user (e.g. only a text protocol's answer)."""

    def feed(self, piece: str) -> str: ...

    def finish(self) -> str: ...


class Pattern(ABC):
    """A ``step`` policy over the shared loop. Subclasses set ``name`` and implement ``step``."""

    name: ClassVar[str]

    @abstractmethod
    async def step(self, run: RunState, ctx: StepContext) -> Decision:
        """Decide what happens next; may append to ``run.messages`` and ``run.steps``."""

    def observe(self, run: RunState, results: Sequence[ActionResult]) -> None:
        """Feed action results back into the conversation (native tool-result messages)."""
        for result in results:
            run.messages.append(
                Message.tool(result.content, tool_call_id=result.call_id, name=result.name)
            )

    async def call_model(
        self,
        run: RunState,
        ctx: StepContext,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        role: str = "default",
        params: GenerationParams | None = None,
        stream_tokens: bool = True,
        token_filter: TokenFilter | None = None,
    ) -> ModelResponse:
        """One routed model call: streams tokens, counts usage, records a ``model_call`` step.

        Tokens are streamed only when they reach someone: not when the caller turned them off
        (a plan, a fan-out branch), not when output guardrails must screen the answer first,
        not when the run's sink shows none (:func:`~astromesh.runs.events.wants_tokens`: a
        REST call, a Step Functions stage). Then the model is asked for its whole answer in
        one response, which costs a fraction of a streamed one; the response is the same.
        """
        started = time.perf_counter()
        # Output guardrails screen the answer in finalize; streamed tokens could not be taken
        # back, so the screened answer is sent once instead (see pipeline.finalize).
        stream_tokens = (
            stream_tokens
            and not ctx.agent.guardrails.screens_output_text
            and wants_tokens(ctx.emit)
        )
        if ctx.resolve is not None:
            messages = await ctx.resolve(messages)
        # The router does not sleep on a retry (its backoff, a server's Retry-After) past what
        # the run has left: it falls back at once instead.
        deadline = run.created_at + timedelta(seconds=ctx.agent.timeout_seconds)
        with model_deadline((deadline - utcnow()).total_seconds()):
            if stream_tokens:
                response = await self._stream_model(
                    ctx, messages, tools, role, params, token_filter
                )
            else:
                response = await ctx.agent.router.complete(
                    messages, tools=tools, role=role, params=params
                )
        cost = response.cost or 0.0  # priced by the router from its price table
        run.usage.add(
            provider=response.provider,
            model=response.model,
            role=role,
            usage=response.usage,
            cost=cost,
        )
        run.record(
            "model_call",
            duration_ms=(time.perf_counter() - started) * 1000.0,
            role=role,
            provider=response.provider,
            model=response.model,
            content=response.content,
            tool_calls=[call.model_dump() for call in response.tool_calls],
            finish_reason=response.finish_reason,
            usage=response.usage.model_dump(),
            cost=cost,
        )
        return response

    @staticmethod
    async def _stream_model(
        ctx: StepContext,
        messages: Sequence[Message],
        tools: Sequence[ToolDefinition],
        role: str,
        params: GenerationParams | None,
        token_filter: TokenFilter | None,
    ) -> ModelResponse:
        """The streamed call: each piece of text (through ``token_filter``) to the sink."""
        response: ModelResponse | None = None
        async for event in ctx.agent.router.stream(messages, tools=tools, role=role, params=params):
            if isinstance(event, TextDelta):
                text = token_filter.feed(event.text) if token_filter else event.text
                if text:
                    await ctx.emit(RunEvent("token", {"content": text}))
            else:
                response = event
        assert response is not None, "router streams always end with a ModelResponse"
        if token_filter is not None and (rest := token_filter.finish()):
            await ctx.emit(RunEvent("token", {"content": rest}))
        return response
