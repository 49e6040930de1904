"""Spans by the OpenTelemetry GenAI semantic conventions: ``invoke_agent {agent}`` (one per
run, its root), ``chat {model}`` (one per model call attempt), ``execute_tool {tool}``,
``embeddings {model}`` and ``retrieval {source}``, with the conventions' attributes.

Cost has no convention; it is ``astromesh.cost.usd``. Message content is added only when the
run's agent opted in, and redacted first (:mod:`astromesh.telemetry.content`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from types import TracebackType
from typing import TYPE_CHECKING, Any

from astromesh.telemetry.provider import fixed_ids, tracing
from astromesh.telemetry.scope import begin_trace, current_capture
from astromesh.telemetry.tracing import fail, operation

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from astromesh.agent import Agent
    from astromesh.models.types import Message, ModelResponse, ToolCall
    from astromesh.runs.state import ActionResult, RunState

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"
COST = "astromesh.cost.usd"
RUN_ID = "astromesh.run.id"
RUN_STATUS = "astromesh.run.status"


class ChatSpan:
    """One model call's span: a context manager (:func:`chat`), ended by leaving it;
    :meth:`answered` records the response."""

    __slots__ = ("_attributes", "_messages", "span")

    def __init__(self, attributes: dict[str, Any], messages: Sequence[Message]) -> None:
        self._attributes = attributes
        self._messages = messages

    def __enter__(self) -> ChatSpan:
        self.span = span = tracing().tracer.start_span(
            f"chat {self._attributes[REQUEST_MODEL]}", attributes=self._attributes
        )
        capture = current_capture()
        if capture is not None:
            span.set_attribute(INPUT_MESSAGES, capture.messages(self._messages))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self.span
        try:
            # A consumer that stopped reading (GeneratorExit) is not a failure.
            if exc is not None and not isinstance(exc, GeneratorExit):
                fail(span, getattr(exc, "code", None) or type(exc).__name__, str(exc))
        finally:
            span.end()

    def answered(self, response: ModelResponse) -> None:
        span = self.span
        span.set_attribute(RESPONSE_MODEL, response.model)
        span.set_attribute(INPUT_TOKENS, response.usage.tokens_in)
        span.set_attribute(OUTPUT_TOKENS, response.usage.tokens_out)
        if response.finish_reason:
            span.set_attribute(FINISH_REASONS, [response.finish_reason])
        if response.cost is not None:
            span.set_attribute(COST, response.cost)
        capture = current_capture()
        if capture is not None:
            span.set_attribute(OUTPUT_MESSAGES, capture.messages([response.as_message()]))


def chat(provider: str, model: str, messages: Sequence[Message]) -> ChatSpan:
    """A ``chat {model}`` span around one attempt of a model call (``with chat(...) as
    span``; an exception leaving the block marks it failed with the error's code).

    Not made current: the router yields stream events from inside it, and a span attached
    across an async generator's yields would leak into the consumer's context.
    """
    return ChatSpan({OPERATION: "chat", PROVIDER: provider, REQUEST_MODEL: model}, messages)


def execute_tool(call: ToolCall, *, tool_type: str | None = None) -> operation:
    """An ``execute_tool {tool}`` span, current in the block (a child run started by an agent
    tool nests under it)."""
    attributes: dict[str, Any] = {
        OPERATION: "execute_tool",
        TOOL_NAME: call.name,
        TOOL_CALL_ID: call.id,
        TOOL_TYPE: tool_type,
    }
    capture = current_capture()
    if capture is not None:
        attributes[TOOL_ARGUMENTS] = capture.text(json.dumps(call.arguments, ensure_ascii=False))
    return operation(f"execute_tool {call.name}", attributes)


def tool_result(span: Span, result: ActionResult) -> None:
    """What a tool call ended with, on its span (content only when captured)."""
    if not result.ok:
        fail(span, "tool_error", "")
    capture = current_capture()
    if capture is not None:
        span.set_attribute(TOOL_RESULT, capture.text(result.content))
    cost = sum(call.cost for call in result.model_calls)
    if cost:
        span.set_attribute(COST, cost)


@contextmanager
def embeddings(provider: str, model: str, count: int) -> Iterator[Span]:
    """An ``embeddings {model}`` span around one embedding request."""
    with operation(
        f"embeddings {model}",
        {
            OPERATION: "embeddings",
            PROVIDER: provider,
            REQUEST_MODEL: model,
            "astromesh.texts": count,
        },
    ) as span:
        yield span


@contextmanager
def retrieval(source: str, **attributes: Any) -> Iterator[Span]:
    """A ``retrieval {source}`` span (semantic memory, a RAG pipeline)."""
    with operation(
        f"retrieval {source}",
        {
            OPERATION: "retrieval",
            "gen_ai.data_source.id": source,
            **{f"astromesh.{k}": v for k, v in attributes.items()},
        },
    ) as span:
        yield span


def end_run(run: RunState, agent: Agent | None) -> None:
    """Record the run's root ``invoke_agent {agent}`` span, from its creation to now, with the
    ids every earlier span of the run named as their parent."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    context = begin_trace(run)
    parent = (
        trace.set_span_in_context(
            trace.NonRecordingSpan(
                trace.SpanContext(
                    int(context.trace_id, 16),
                    int(context.parent_span_id, 16),
                    is_remote=True,
                    trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
                )
            )
        )
        if context.parent_span_id
        else otel_context.Context()
    )
    created = run.created_at if run.created_at.tzinfo else run.created_at.replace(tzinfo=UTC)
    attributes: dict[str, Any] = {
        OPERATION: "invoke_agent",
        AGENT_NAME: run.agent,
        CONVERSATION_ID: run.session_id,
        INPUT_TOKENS: run.usage.tokens_in,
        OUTPUT_TOKENS: run.usage.tokens_out,
        COST: round(run.usage.cost, 8),
        RUN_ID: run.id,
        RUN_STATUS: run.status.value,
        "astromesh.tenant": run.tenant,
        "astromesh.iterations": run.iteration,
    }
    if agent is not None:
        primary = agent.router.primary()
        attributes[PROVIDER] = primary.settings.provider_type
        attributes[REQUEST_MODEL] = primary.model
    if run.usage.model:
        attributes[RESPONSE_MODEL] = run.usage.model
    if run.parent_run_id:
        attributes["astromesh.parent_run_id"] = run.parent_run_id
    with fixed_ids(int(context.trace_id, 16), int(context.span_id, 16)):
        span = tracing().tracer.start_span(
            f"invoke_agent {run.agent}",
            context=parent,
            attributes=attributes,
            start_time=int(created.timestamp() * 1e9),
        )
    capture = current_capture()
    if capture is not None:
        span.set_attribute(INPUT_MESSAGES, capture.text(run.query))
        if run.answer:
            span.set_attribute(OUTPUT_MESSAGES, capture.text(run.answer))
    if run.status.value != "succeeded":
        code = next((s.data.get("code") for s in reversed(run.steps) if s.type == "stopped"), None)
        fail(span, str(code or run.status.value), run.error or "")
    span.end()
