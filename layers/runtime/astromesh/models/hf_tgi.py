"""Hugging Face Text Generation Inference (TGI): native ``/generate_stream`` or its messages API.

Two ways to talk to one TGI server, chosen by ``options["api"]`` or, when unset, by the
endpoint: an endpoint ending in ``/v1`` means the messages API, anything else the native one.

``generate`` (native): ``POST /generate_stream`` with a prompt string; TGI answers SSE events
``{"token": {"text", "special"}, "generated_text", "details"}``, the last one carrying
``details.finish_reason`` and ``details.generated_tokens``. The prompt is rendered from the
chat messages with a chat template (``options["chat_template"]``):

- ``auto`` (default): the *model's own* template, applied by the server through
  ``POST /chat_tokenize`` (TGI >= 2.2.1), which also gives the exact prompt token count; when
  the server has no such route (older TGI, or a model without a template) the simple template
  below is used from then on.
- ``server``: the model's template only; a server that cannot apply it is an error.
- ``simple``: always :func:`render_chatml`, without the extra round trip.

The simple template is ChatML (``<|im_start|>role\\ncontent<|im_end|>\\n`` per message, then
``<|im_start|>assistant\\n``), which many instruction-tuned models were trained on; the
provider adds ``<|im_end|>`` as a stop sequence so other models stop there too. Tool results
become user turns prefixed ``Observation:``, as for the in-process llama.cpp model.

``messages``: TGI's OpenAI-compatible ``POST /v1/chat/completions`` (tools, JSON via grammar),
handled entirely by :class:`~astromesh.models.openai_compat.OpenAICompatModel`.

Health is ``GET /health`` in both cases. Usage: completion tokens from
``details.generated_tokens``; prompt tokens from ``details.prefill`` or ``/chat_tokenize``
when available, otherwise estimated and marked ``estimated``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from astromesh.errors import ProviderError
from astromesh.models._http import (
    MAX_ERROR_BODY_BYTES,
    MAX_RESPONSE_BYTES,
    HttpModel,
    drain,
    error_excerpt,
    estimate_tokens,
    is_json_response,
    server_root,
)
from astromesh.models.base import ProviderSettings, StreamTimer
from astromesh.models.catalog import Capabilities
from astromesh.models.openai_compat import OpenAICompatModel, _sse_data
from astromesh.models.types import (
    GenerationParams,
    Message,
    ModelResponse,
    Role,
    StreamEvent,
    TextDelta,
    ToolDefinition,
    Usage,
)

logger = logging.getLogger(__name__)

GENERATE_STREAM_PATH = "/generate_stream"
GENERATE_PATH = "/generate"
CHAT_TOKENIZE_PATH = "/chat_tokenize"
CHATML_END = "<|im_end|>"
MAX_STOP_SEQUENCES = 4
"""TGI's default ``--max-stop-sequences``: more are refused with a 422."""

FINISH_REASONS = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}
"""TGI's finish reasons in the OpenAI vocabulary the rest of the runtime uses."""

Api = Literal["generate", "messages"]
TemplateMode = Literal["auto", "server", "simple"]


def render_chatml(messages: Sequence[Message]) -> str:
    """The documented fallback chat template (ChatML), ending with the assistant's turn."""
    parts = []
    for message in messages:
        role, content = message.role.value, message.content
        if message.role is Role.TOOL:
            role, content = "user", f"Observation: {content}"
        parts.append(f"<|im_start|>{role}\n{content}{CHATML_END}\n")
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


@dataclass
class _Prompt:
    text: str
    tokens: int | None
    simple: bool


class TGIModel(HttpModel):
    """A model served by Hugging Face TGI."""

    provider_type = "hf_tgi"
    default_endpoint = "http://127.0.0.1:8080"
    health_path = "/health"
    default_capabilities = Capabilities(json_mode=True, context_window=4096)

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        given = (settings.endpoint or self.default_endpoint).rstrip("/")
        self.endpoint = server_root(given)
        api = settings.options.get("api") or ("messages" if given.endswith("/v1") else "generate")
        if api not in ("generate", "messages"):
            from astromesh.errors import ConfigurationError

            raise ConfigurationError(f"hf_tgi option api={api!r}: use 'generate' or 'messages'")
        self.api: Api = api
        template = settings.options.get("chat_template", "auto")
        if template not in ("auto", "server", "simple"):
            from astromesh.errors import ConfigurationError

            raise ConfigurationError(
                f"hf_tgi option chat_template={template!r}: use 'auto', 'server' or 'simple'"
            )
        self.template: TemplateMode = template
        self._server_template = template != "simple"
        self._messages: OpenAICompatModel | None = None
        if self.api == "messages":
            self._messages = OpenAICompatModel(
                ProviderSettings(
                    provider_type=settings.provider_type,
                    model=settings.model,
                    endpoint=self.endpoint + "/v1",
                    api_key=settings.api_key,
                    params=settings.params,
                    timeout_seconds=settings.timeout_seconds,
                    name=settings.label,
                    options={"stream_usage": True, **settings.options},
                )
            )
        # TGI's native API has no tool calling; its messages API does (through grammars).
        self.supports_native_tools = self.api == "messages"

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Stream one completion; see :meth:`astromesh.models.base.Model.stream`."""
        if self._messages is not None:
            async for event in self._messages.stream(messages, tools=tools, params=params):
                yield event
            return
        timer = StreamTimer()
        prompt = await self._prompt(messages)
        body = {"inputs": prompt.text, "parameters": self._parameters(params, prompt.simple)}
        pieces: list[str] = []
        final: dict[str, Any] | None = None
        async with self._post_stream(GENERATE_STREAM_PATH, body) as response:
            if is_json_response(response):
                # ``/generate``'s shape: a server (or proxy) that does not stream.
                data = await self._read_json(response)
                data = data[0] if isinstance(data, list) and data else data
                self._raise_if_error(data)
                text = str(data.get("generated_text") or "")
                if text:
                    pieces.append(text)
                    yield TextDelta(text)
                final = data
            else:
                events = _sse_data(self._lines(response))
                async for raw in events:
                    event = self._load(raw)
                    self._raise_if_error(event)
                    token = event.get("token") or {}
                    text = token.get("text") or ""
                    if text and not token.get("special"):
                        pieces.append(text)
                        yield TextDelta(text)
                    if event.get("details") is not None or event.get("generated_text") is not None:
                        final = event
                        break
                await drain(events)
        if final is None:
            raise self._cut_error()
        yield self._response("".join(pieces), final, prompt, timer)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> ModelResponse:
        """One answer asked for whole: ``POST /generate`` (native API) or ``stream: false``
        (messages API), one JSON body instead of an event per token."""
        if self._messages is not None:
            return await self._messages.complete(messages, tools=tools, params=params)
        timer = StreamTimer()
        prompt = await self._prompt(messages)
        body = {"inputs": prompt.text, "parameters": self._parameters(params, prompt.simple)}
        response, raw = await self._post_whole(GENERATE_PATH, body)
        with self._parsing():
            if not is_json_response(response):
                raise self._error(f"unexpected {response.headers.get('content-type')!r} answer")
            data: Any = json.loads(raw)
            data = data[0] if isinstance(data, list) and data else data
            if not isinstance(data, dict):
                raise self._error(f"unexpected JSON response: {error_excerpt(raw)}")
            self._raise_if_error(data)
            if data.get("generated_text") is None:
                raise self._error(f"answer without generated_text: {error_excerpt(raw)}")
            return self._response(str(data["generated_text"]), data, prompt, timer)

    # -- prompt ---------------------------------------------------------------------------------

    async def _prompt(self, messages: Sequence[Message]) -> _Prompt:
        """The prompt string: the model's own template through the server when it can, else
        ChatML (see the module docstring)."""
        if self._server_template:
            body = {
                "model": self.model,
                "messages": [_chat_message(message) for message in messages],
            }
            try:
                async with self._http().stream(
                    "POST", self._url(CHAT_TOKENIZE_PATH), json=body
                ) as response:
                    limit = MAX_RESPONSE_BYTES if response.is_success else MAX_ERROR_BODY_BYTES
                    raw = await self._read_body(response, limit, cut=not response.is_success)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc) from exc
            if response.is_success:
                data = self._json_object(raw)
                tokens = data.get("tokenize_response")
                return _Prompt(
                    text=str(data.get("templated_text") or ""),
                    tokens=len(tokens) if isinstance(tokens, list) else None,
                    simple=False,
                )
            if response.status_code in (404, 405, 422) and self.template == "auto":
                # No route (TGI < 2.2.1) or no template for this model: remember, don't ask again.
                logger.info(
                    "provider=<%s> | server cannot apply the chat template (HTTP %d); using ChatML",
                    self.settings.label,
                    response.status_code,
                )
                self._server_template = False
            else:
                raise self._status_error(response.status_code, raw, response.headers)
        return _Prompt(render_chatml(messages), None, simple=True)

    def _parameters(self, override: GenerationParams | None, simple: bool) -> dict[str, Any]:
        """Our parameters under TGI's names and constraints."""
        params = self.effective_params(override)
        data = params.model_dump(exclude_none=True)
        out: dict[str, Any] = {"details": True}
        if "max_tokens" in data:
            out["max_new_tokens"] = data.pop("max_tokens")
        temperature = data.pop("temperature", None)
        if temperature is not None:
            # TGI refuses temperature 0; greedy decoding is ``do_sample: false``.
            if temperature > 0:
                out.update(temperature=temperature, do_sample=True)
            else:
                out["do_sample"] = False
        top_p = data.pop("top_p", None)
        if top_p is not None and 0 < top_p < 1:  # TGI requires 0 < top_p < 1
            out["top_p"] = top_p
        stop = list(data.pop("stop", None) or [])
        if simple and CHATML_END not in stop and len(stop) < MAX_STOP_SEQUENCES:
            stop.append(CHATML_END)
        if stop:
            out["stop"] = stop
        response_format = data.pop("response_format", None)
        if isinstance(response_format, dict) and "grammar" not in data:
            schema = (response_format.get("json_schema") or {}).get("schema")
            out["grammar"] = {"type": "json", "value": schema or {"type": "object"}}
        out.update(data)  # seed, top_k, repetition_penalty, grammar... pass through
        return out

    # -- response -------------------------------------------------------------------------------

    def _load(self, raw: str) -> dict[str, Any]:
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError):
            raise self._error(f"malformed stream event: {raw[:100]!r}") from None
        if not isinstance(event, dict):
            raise self._error(f"unexpected stream event: {raw[:100]!r}")
        return event

    def _raise_if_error(self, event: dict[str, Any]) -> None:
        """TGI reports generation failures inside the stream as ``{"error", "error_type"}``;
        only a validation error is the request's fault."""
        if "error" in event:
            kind = event.get("error_type")
            raise self._error(
                f"server error in stream ({kind or 'unknown'}): {event['error']}",
                retryable=kind != "validation",
            )

    def _status_error(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None
    ) -> ProviderError:
        """As for every HTTP provider, plus TGI's 424 (the model shard failed to generate),
        which another candidate can survive."""
        error = super()._status_error(status, body, headers)
        error.retryable = error.retryable or status == 424
        return error

    def _response(
        self,
        content: str,
        final: dict[str, Any],
        prompt: _Prompt,
        timer: StreamTimer,
    ) -> ModelResponse:
        details = final.get("details") or {}
        prefill = details.get("prefill")
        tokens_in = len(prefill) if prefill else prompt.tokens
        tokens_out = details.get("generated_tokens")
        estimated = tokens_in is None or tokens_out is None
        if tokens_in is None:
            tokens_in = estimate_tokens(prompt.text)
        if tokens_out is None:
            tokens_out = estimate_tokens(content)
        reason = details.get("finish_reason")
        return ModelResponse(
            content=content,
            usage=Usage(tokens_in=tokens_in, tokens_out=tokens_out, estimated=estimated),
            provider=self.settings.label,
            model=self.model,
            finish_reason=FINISH_REASONS.get(reason, reason),
            latency_ms=timer.elapsed_ms,
        )

    async def aclose(self) -> None:
        if self._messages is not None:
            await self._messages.aclose()
        await super().aclose()


def _chat_message(message: Message) -> dict[str, str]:
    """A message as ``/chat_tokenize`` takes it (OpenAI's shape, text only)."""
    if message.role is Role.TOOL:
        return {"role": "user", "content": f"Observation: {message.content}"}
    return {"role": message.role.value, "content": message.content}


__all__ = ["TGIModel", "render_chatml"]
