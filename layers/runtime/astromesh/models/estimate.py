"""The token estimate used when a backend reports no usage.

Apart from the HTTP plumbing (:mod:`._http`), so the router's strategies can count a
request's tokens without importing httpx (docs/performance.md, "Lazy imports").
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence

from astromesh.models.types import Message, ToolCall, ToolDefinition, Usage


def estimate_tokens(*texts: str) -> int:
    """A rough token count (about four characters per token, at least one per non-empty text).

    Used only when a backend reports no usage, so cost limits and usage lines still see a
    plausible number; the result is flagged ``Usage.estimated``.
    """
    return sum(max(1, math.ceil(len(text) / 4)) for text in texts if text)


def prompt_texts(messages: Sequence[Message], tools: Sequence[ToolDefinition]) -> Iterator[str]:
    """The pieces of a request that cost input tokens, for :func:`estimate_tokens`.

    Lazy: a provider hands them to :func:`resolve_usage` on every call, and they are only
    read when the backend reported no usage (encoding every message's arguments and every
    tool again per call would otherwise cost more than the rest of the response's parsing).
    """
    for message in messages:
        yield message.content
        yield from (json.dumps(call.arguments) for call in message.tool_calls)
    yield from (json.dumps(tool.model_dump()) for tool in tools)


def completion_texts(content: str, tool_calls: Sequence[ToolCall]) -> Iterator[str]:
    """The pieces of an answer that cost output tokens, for :func:`estimate_tokens` (lazy,
    as :func:`prompt_texts`)."""
    yield content
    yield from (call.name + json.dumps(call.arguments) for call in tool_calls)


def resolve_usage(
    tokens_in: int | None,
    tokens_out: int | None,
    *,
    prompt: Iterable[str],
    completion: Iterable[str],
) -> Usage:
    """Usage from the backend's counts, estimating whichever count it did not send."""
    estimated = tokens_in is None or tokens_out is None
    if tokens_in is None:
        tokens_in = estimate_tokens(*prompt)
    if tokens_out is None:
        tokens_out = estimate_tokens(*completion)
    return Usage(tokens_in=tokens_in, tokens_out=tokens_out, estimated=estimated)
