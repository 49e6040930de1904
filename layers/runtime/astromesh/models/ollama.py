"""Ollama's native chat API (``POST /api/chat``, NDJSON stream).

Used instead of Ollama's OpenAI-compatible endpoint because the native one streams tool calls
with structured arguments, takes per-request ``options`` (``num_ctx``, ``num_predict``...) and
reports exact token counts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from astromesh.models._http import (
    JSON_BODY,
    HttpModel,
    completion_texts,
    drain,
    function_tool,
    is_json_response,
    parse_arguments,
    prompt_texts,
    resolve_usage,
)
from astromesh.models.base import ProviderSettings, StreamTimer
from astromesh.models.types import (
    GenerationParams,
    Message,
    ModelResponse,
    Role,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolDefinition,
)
from astromesh.models.wire_json import WireCache, dumps
from astromesh.models.wire_json import body as wire_body

CHAT_PATH = "/api/chat"

TOP_LEVEL_PARAMS = frozenset({"format", "keep_alive", "think"})
"""Extra parameters Ollama reads from the request itself rather than from ``options``."""


class OllamaModel(HttpModel):
    """A chat model served by Ollama."""

    provider_type = "ollama"
    supports_native_tools = True
    default_endpoint = "http://127.0.0.1:11434"
    health_path = "/api/tags"

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._wire = WireCache(_wire_message)

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Stream one completion; see :meth:`astromesh.models.base.Model.stream`."""
        timer = StreamTimer()
        body = self._request_body(messages, tools, self.effective_params(params), stream=True)
        state = _StreamState()
        async with self._post_stream(CHAT_PATH, body, JSON_BODY) as response:
            chunks = self._chunks(response)
            async for chunk in chunks:
                text = self._absorb(state, chunk)
                if text:
                    yield TextDelta(text)
                if state.final is not None:
                    break
            await drain(chunks)
        if state.final is None:
            raise self._cut_error()
        yield self._response(state, messages, tools, timer)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> ModelResponse:
        """One answer asked for whole (``stream: false``): one JSON object instead of a line
        per token. A server that streams anyway is read line by line, as :meth:`stream`."""
        timer = StreamTimer()
        body = self._request_body(messages, tools, self.effective_params(params), stream=False)
        response, raw = await self._post_whole(CHAT_PATH, body, JSON_BODY)
        with self._parsing():
            state = _StreamState()
            if is_json_response(response):
                self._absorb(state, self._json_object(raw))
            else:
                for line in raw.splitlines():
                    if line.strip():
                        self._absorb(state, self._line(line))
                        if state.final is not None:
                            break
            if state.final is None:
                raise self._cut_error()
            return self._response(state, messages, tools, timer)

    # -- request ------------------------------------------------------------------------------

    def _request_body(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolDefinition],
        params: GenerationParams,
        *,
        stream: bool,
    ) -> bytes:
        """The request as JSON: model, messages, tools, ``stream``, then the parameters Ollama
        reads at the top level and ``options``; the messages and tools sent before reused
        (:mod:`astromesh.models.wire_json`)."""
        tail: dict[str, Any] = {"stream": stream}
        options = _options(params)
        for name in TOP_LEVEL_PARAMS & options.keys():
            tail[name] = options.pop(name)
        if options:
            tail["options"] = options
        arrays = {"messages": self._wire.messages(messages)}
        if tools:
            arrays["tools"] = dumps([function_tool(tool) for tool in tools])
        return wire_body({"model": self.model}, arrays, tail)

    # -- response -----------------------------------------------------------------------------

    async def _chunks(self, response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
        """Each JSON object of the body: NDJSON when streaming, one object otherwise."""
        if is_json_response(response):
            yield await self._read_json(response)
            return
        async for line in self._lines(response):
            if line.strip():
                yield self._line(line)

    def _line(self, line: str | bytes) -> dict[str, Any]:
        """One NDJSON line as an object, or a (non-retryable) error quoting it."""
        try:
            chunk = json.loads(line)
        except (ValueError, RecursionError):
            raise self._error(f"malformed stream line: {line[:100]!r}") from None
        if not isinstance(chunk, dict):
            raise self._error(f"unexpected stream line: {line[:100]!r}")
        return chunk

    def _absorb(self, state: _StreamState, chunk: dict[str, Any]) -> str:
        """Fold one line into ``state``; return the text it added.

        An ``error`` line mid-stream means the server or its model runner failed after the
        request was accepted (request errors come back as HTTP statuses), so it is retryable.
        """
        if "error" in chunk:
            raise self._error(f"server error in stream: {chunk['error']}", retryable=True)
        message = chunk.get("message") or {}
        text = message.get("content") or ""
        state.content += text
        for call in message.get("tool_calls") or []:
            state.tool_calls.append(self._tool_call(call))
        if chunk.get("done"):
            state.final = chunk
        return text

    def _tool_call(self, call: dict[str, Any]) -> ToolCall:
        function = call.get("function") or {}
        if not function.get("name"):
            raise self._error("tool call without a function name")
        return ToolCall(
            id=call.get("id") or self._next_call_id(),
            name=function["name"],
            arguments=parse_arguments(function.get("arguments")),
        )

    def _response(
        self,
        state: _StreamState,
        messages: Sequence[Message],
        tools: Sequence[ToolDefinition],
        timer: StreamTimer,
    ) -> ModelResponse:
        final = state.final or {}
        return ModelResponse(
            content=state.content,
            tool_calls=state.tool_calls,
            usage=resolve_usage(
                final.get("prompt_eval_count"),
                final.get("eval_count"),
                prompt=prompt_texts(messages, tools),
                completion=completion_texts(state.content, state.tool_calls),
            ),
            provider=self.settings.label,
            model=self.model,
            finish_reason=_finish_reason(final.get("done_reason"), bool(state.tool_calls)),
            latency_ms=timer.elapsed_ms,
        )


@dataclass
class _StreamState:
    """Everything accumulated from the lines of one streamed answer."""

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    final: dict[str, Any] | None = None


def _finish_reason(done_reason: str | None, has_tool_calls: bool) -> str | None:
    """Ollama says ``stop`` even when it stopped to call tools; report ``tool_calls`` as
    OpenAI-compatible servers do, so callers see one vocabulary."""
    if has_tool_calls and done_reason in (None, "stop"):
        return "tool_calls"
    return done_reason


def _options(params: GenerationParams) -> dict[str, Any]:
    """Our parameters under Ollama's option names (``max_tokens`` is ``num_predict``)."""
    data = params.model_dump(exclude_none=True)
    if "max_tokens" in data:
        data["num_predict"] = data.pop("max_tokens")
    response_format = data.pop("response_format", None)
    if isinstance(response_format, dict) and "format" not in data:
        # OpenAI's shape (structured output asks for it so) as Ollama's ``format``: the
        # JSON Schema itself, or "json" for plain JSON mode.
        schema = (response_format.get("json_schema") or {}).get("schema")
        if response_format.get("type") == "json_schema" and isinstance(schema, dict):
            data["format"] = schema
        elif response_format.get("type") in ("json_object", "json_schema"):
            data["format"] = "json"
    return data


def _wire_message(message: Message) -> dict[str, Any]:
    """Our message in Ollama's shape: dict arguments, tool results named by tool."""
    wire: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.role is Role.TOOL and message.name:
        wire["tool_name"] = message.name
        wire["name"] = message.name
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": call.id, "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
    return wire
