"""OpenAI-compatible chat completions: OpenAI itself, vLLM, llama.cpp server, TGI's messages API.

The endpoint is the API base *with* its version segment, as upstream configs write it
(``https://api.openai.com/v1``); the provider appends ``/chat/completions`` and ``/models``.

Options (``ProviderSettings.options``):
    stream_usage: send ``stream_options.include_usage`` (default true). Set false for servers
        that reject the field; usage is then estimated.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from astromesh.errors import ProviderError
from astromesh.models._http import (
    JSON_BODY,
    HttpModel,
    completion_texts,
    drain,
    function_tool,
    is_event_stream,
    is_json_response,
    is_retryable_status,
    parse_arguments,
    prompt_texts,
    resolve_usage,
    server_root,
)
from astromesh.models.base import ProviderSettings, StreamTimer
from astromesh.models.catalog import Capabilities
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

CHAT_PATH = "/chat/completions"
DONE = "[DONE]"
WHOLE_HEADERS = {**JSON_BODY, "Accept": "application/json"}
"""A non-streamed call's headers (the client's default ``Accept`` is an event stream)."""
BODY_FIELDS = frozenset({"model", "messages", "tools"})


class OpenAICompatModel(HttpModel):
    """A chat model behind an OpenAI-compatible ``/chat/completions`` endpoint."""

    provider_type = "openai_compat"
    supports_native_tools = True
    default_endpoint = "http://127.0.0.1:8000/v1"
    health_path = "/models"

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._wire = WireCache(_wire_message)

    def _headers(self) -> dict[str, str]:
        return {**super()._headers(), "Accept": "text/event-stream"}

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Stream one completion; see :meth:`astromesh.models.base.Model.stream`."""
        timer = StreamTimer()
        body = self._encoded_body(messages, tools, self.effective_params(params), stream=True)
        state = _StreamState()
        async with self._post_stream(CHAT_PATH, body, JSON_BODY) as response:
            if is_json_response(response):
                # The server ignored ``stream: true`` and answered with a whole completion.
                self._absorb_completion(state, await self._read_json(response))
                if state.content:
                    yield TextDelta(state.content)
            else:
                events = _sse_data(self._lines(response))
                async for event in events:
                    if event.strip() == DONE:
                        state.done = True
                        break
                    text = self._absorb_chunk(state, event)
                    if text:
                        yield TextDelta(text)
                await drain(events)
        if not (state.done or state.finish_reason):
            raise self._cut_error()
        yield self._final(state, messages, tools, timer)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> ModelResponse:
        """One completion asked for whole (``stream: false``): one JSON body to parse instead
        of an event per token. A server that streams anyway is read as a stream."""
        timer = StreamTimer()
        body = self._encoded_body(messages, tools, self.effective_params(params), stream=False)
        response, raw = await self._post_whole(CHAT_PATH, body, WHOLE_HEADERS)
        with self._parsing():
            state = _StreamState()
            if is_event_stream(response):
                for event in _sse_payloads(raw.decode("utf-8", "replace")):
                    if event.strip() == DONE:
                        state.done = True
                        break
                    self._absorb_chunk(state, event)
                if not (state.done or state.finish_reason):
                    raise self._cut_error()
            else:
                self._absorb_completion(state, self._json_object(raw))
            return self._final(state, messages, tools, timer)

    # -- request ------------------------------------------------------------------------------

    def _encoded_body(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolDefinition],
        params: GenerationParams,
        *,
        stream: bool,
    ) -> bytes:
        """:meth:`_request_body` as JSON, the messages and tools sent before reused
        (:mod:`astromesh.models.wire_json`)."""
        tail = self._tail(params, stream=stream)
        if not BODY_FIELDS.isdisjoint(tail):  # a parameter replacing a field: built whole
            return dumps(self._request_body(messages, tools, params, stream=stream))
        arrays = {"messages": self._wire.messages(messages)}
        if tools:
            arrays["tools"] = dumps([function_tool(tool) for tool in tools])
        return wire_body({"model": self.model}, arrays, tail)

    def _request_body(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolDefinition],
        params: GenerationParams,
        *,
        stream: bool = True,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [_wire_message(message) for message in messages],
        }
        if tools:
            body["tools"] = [function_tool(tool) for tool in tools]
        body.update(self._tail(params, stream=stream))
        return body

    def _tail(self, params: GenerationParams, *, stream: bool) -> dict[str, Any]:
        """What follows the model, messages and tools: the parameters, ``stream``, and the
        request for usage in the stream."""
        tail = params.model_dump(exclude_none=True)
        tail["stream"] = stream
        if stream and self.settings.options.get("stream_usage", True):
            tail["stream_options"] = {"include_usage": True}
        return tail

    # -- response -----------------------------------------------------------------------------

    def _absorb_chunk(self, state: _StreamState, data: str) -> str:
        """Fold one SSE chunk into ``state``; return the text it added."""
        chunk = self._load(data)
        if "error" in chunk:
            raise self._stream_error(chunk["error"])
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            state.usage = usage
        choice = _first_choice(chunk)
        if choice is None:
            return ""
        if choice.get("finish_reason"):
            state.finish_reason = choice["finish_reason"]
        delta = choice.get("delta") or {}
        for call in delta.get("tool_calls") or []:
            state.add_tool_delta(call)
        text = delta.get("content") or ""
        state.content += text
        return text

    def _absorb_completion(self, state: _StreamState, data: dict[str, Any]) -> None:
        """Fill ``state`` from a non-streamed ``chat.completion`` object."""
        if "error" in data:
            raise self._stream_error(data["error"])
        choice = _first_choice(data)
        if choice is None:
            raise self._error("completion without choices")
        message = choice.get("message") or {}
        state.content = message.get("content") or ""
        for index, call in enumerate(message.get("tool_calls") or []):
            state.add_tool_delta({"index": index, **call})
        state.finish_reason = choice.get("finish_reason")
        if isinstance(data.get("usage"), dict):
            state.usage = data["usage"]
        state.done = True

    def _final(
        self,
        state: _StreamState,
        messages: Sequence[Message],
        tools: Sequence[ToolDefinition],
        timer: StreamTimer,
    ) -> ModelResponse:
        tool_calls = [self._tool_call(partial) for _, partial in sorted(state.tool_calls.items())]
        usage = state.usage or {}
        return ModelResponse(
            content=state.content,
            tool_calls=tool_calls,
            usage=resolve_usage(
                usage.get("prompt_tokens"),
                usage.get("completion_tokens"),
                prompt=prompt_texts(messages, tools),
                completion=completion_texts(state.content, tool_calls),
            ),
            provider=self.settings.label,
            model=self.model,
            finish_reason=state.finish_reason,
            latency_ms=timer.elapsed_ms,
        )

    def _tool_call(self, partial: _PartialToolCall) -> ToolCall:
        if not partial.name:
            raise self._error("tool call without a function name")
        return ToolCall(
            id=partial.id or self._next_call_id(),
            name=partial.name,
            arguments=parse_arguments(partial.arguments),
        )

    def _load(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):
            raise self._error(f"malformed stream chunk: {data[:100]!r}") from None
        if not isinstance(chunk, dict):
            raise self._error(f"unexpected stream chunk: {data[:100]!r}")
        return chunk

    def _stream_error(self, error: Any) -> ProviderError:
        """An error the server reported inside a 200 response (vLLM does this mid-stream).

        It is a server-side failure unless it carries a client-error status code.
        """
        message = error.get("message") if isinstance(error, dict) else error
        code = error.get("code") if isinstance(error, dict) else None
        status = code if isinstance(code, int) else None
        retryable = is_retryable_status(status) if status else True
        return self._error(
            f"server error in stream: {message}", retryable=retryable, status_code=status
        )


class VLLMModel(OpenAICompatModel):
    """vLLM's OpenAI-compatible server (``vllm serve``): port 8000, ``GET /health`` at the root.

    Tool calls need the server started with ``--enable-auto-tool-choice``; JSON mode works
    through its guided decoding (``response_format``).
    """

    provider_type = "vllm"
    default_endpoint = "http://127.0.0.1:8000/v1"
    default_capabilities = Capabilities(json_mode=True, context_window=8192)

    def _health_url(self) -> str:
        return server_root(self.endpoint) + "/health"


class LlamaCppServerModel(OpenAICompatModel):
    """llama.cpp's ``llama-server``: port 8080, ``GET /health`` at the root (503 while the
    model loads). Tool calls need the server started with ``--jinja``."""

    provider_type = "llamacpp"
    default_endpoint = "http://127.0.0.1:8080/v1"
    default_capabilities = Capabilities(json_mode=True, context_window=4096)

    def _health_url(self) -> str:
        return server_root(self.endpoint) + "/health"


@dataclass
class _PartialToolCall:
    """A tool call being assembled from stream deltas: arguments arrive as string fragments."""

    id: str | None = None
    name: str = ""
    arguments: str = ""


@dataclass
class _StreamState:
    """Everything accumulated from the chunks of one streamed completion."""

    content: str = ""
    tool_calls: dict[int, _PartialToolCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    done: bool = False

    def add_tool_delta(self, delta: dict[str, Any]) -> None:
        """Merge one ``tool_calls`` delta, keyed by its ``index``.

        Some servers omit ``index``; a delta with a new id then starts a new call and one
        without continues the latest.
        """
        index = delta.get("index")
        if not isinstance(index, int):
            index = self._guess_index(delta.get("id"))
        partial = self.tool_calls.setdefault(index, _PartialToolCall())
        if delta.get("id"):
            partial.id = delta["id"]
        function = delta.get("function") or {}
        if function.get("name"):
            partial.name = function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            partial.arguments += arguments
        elif arguments is not None:
            partial.arguments += json.dumps(arguments)

    def _guess_index(self, call_id: str | None) -> int:
        for index, partial in self.tool_calls.items():
            if call_id and partial.id == call_id:
                return index
        if call_id or not self.tool_calls:
            return len(self.tool_calls)
        return max(self.tool_calls)


async def _sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` payload of each server-sent event of the body's ``lines``.

    Multi-line data is joined as the SSE spec says; comments and other fields are skipped. An
    event not terminated by a blank line when the body ends is dropped, so a cut mid-event is
    never parsed as a (truncated) chunk.
    """
    event: list[str] = []
    async for line in lines:
        if (data := _sse_line(event, line)) is not None:
            yield data


def _sse_payloads(text: str) -> Iterator[str]:
    """:func:`_sse_data` over a body already read whole."""
    event: list[str] = []
    for line in text.splitlines():
        if (data := _sse_line(event, line)) is not None:
            yield data


def _sse_line(event: list[str], line: str) -> str | None:
    """Feed one line to the event being read (``event``, its ``data`` lines so far): the
    event's data once a blank line ends it, else ``None``."""
    if not line:
        if not event:
            return None
        data = "\n".join(event)
        event.clear()
        return data
    if line.startswith("data:"):
        value = line[5:]
        event.append(value[1:] if value.startswith(" ") else value)
    return None


def _first_choice(chunk: dict[str, Any]) -> dict[str, Any] | None:
    for choice in chunk.get("choices") or []:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


def _wire_message(message: Message) -> dict[str, Any]:
    """Our message in OpenAI's shape: tool calls with JSON-string arguments, tool results by id."""
    if message.role is Role.TOOL:
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id,
            "content": message.content,
        }
    wire: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.name:
        wire["name"] = message.name
    if message.tool_calls:
        wire["content"] = message.content or None
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": _wire_arguments(call.arguments)},
            }
            for call in message.tool_calls
        ]
    return wire


def _wire_arguments(arguments: dict[str, Any]) -> str:
    """Arguments as a JSON string; unparseable ones the model produced go back verbatim."""
    if set(arguments) == {"_raw"} and isinstance(arguments["_raw"], str):
        return arguments["_raw"]
    return json.dumps(arguments)
