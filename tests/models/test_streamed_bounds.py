"""Streamed calls (``Model.stream``) are bounded like whole ones.

A streamed answer is read line by line (SSE for OpenAI-compatible servers and TGI, NDJSON for
Ollama); a backend that never ends its stream, or sends one endless line, is refused once
``MAX_RESPONSE_BYTES`` (decoded) came in, instead of filling the memory. The lines are split
exactly as ``str.splitlines`` splits the whole text, however the body is cut into pieces.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from astromesh.errors import ProviderError
from astromesh.models import Message, Model, ProviderSettings, create_model
from astromesh.models._http import MAX_RESPONSE_BYTES, LineSplitter
from tests.support.model_servers import (
    Reply,
    ScriptedOllamaServer,
    ScriptedOpenAIServer,
    ScriptedTGIServer,
)

HELLO = [Message.user("hi")]

ScriptedServer = ScriptedOpenAIServer | ScriptedOllamaServer | ScriptedTGIServer

OPENAI_CHUNK = b'data: {"choices": [{"index": 0, "delta": {"content": "%s"}}]}\n\n'
TGI_TOKEN = (
    b'data: {"token": {"id": 1, "text": "%s", "special": false}, "generated_text": null}\n\n'
)
OLLAMA_LINE = b'{"message": {"role": "assistant", "content": "%s"}, "done": false}\n'

CASES: dict[str, tuple[type[ScriptedServer], str, dict[str, Any], str, bytes]] = {
    "openai_compat": (ScriptedOpenAIServer, "openai_compat", {}, "text/event-stream", OPENAI_CHUNK),
    "ollama": (ScriptedOllamaServer, "ollama", {}, "application/x-ndjson", OLLAMA_LINE),
    "tgi_generate": (
        ScriptedTGIServer,
        "hf_tgi",
        {"chat_template": "simple"},
        "text/event-stream",
        TGI_TOKEN,
    ),
    "tgi_messages": (
        ScriptedTGIServer,
        "hf_tgi",
        {"api": "messages"},
        "text/event-stream",
        OPENAI_CHUNK,
    ),
}
"""Per protocol: the server, the provider, its options, the stream's content type and one
well-formed piece of a stream still going (``%s`` is its text), which the provider reads and
waits for more after."""


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Iterator[tuple[ScriptedServer, Model, str, bytes]]:
    server_class, provider_type, options, content_type, piece = CASES[request.param]
    with server_class() as server:
        settings = ProviderSettings(
            provider_type, "scripted", endpoint=server.url, timeout_seconds=10.0, options=options
        )
        yield server, create_model(settings), content_type, piece


async def streamed_error(model: Model) -> ProviderError:
    try:
        with pytest.raises(ProviderError) as caught:
            async for _ in model.stream(HELLO):
                pass
    finally:
        await model.aclose()
    return caught.value


async def test_an_endless_line_is_refused_past_the_limit(
    case: tuple[ScriptedServer, Model, str, bytes],
) -> None:
    server, model, content_type, _ = case
    server.push(Reply(body=b"data: " + b"x" * (MAX_RESPONSE_BYTES + 1), content_type=content_type))

    error = await streamed_error(model)

    assert error.retryable is False
    assert f"larger than {MAX_RESPONSE_BYTES} bytes" in error.message


async def test_a_compressed_stream_is_bounded_by_its_decoded_size(
    case: tuple[ScriptedServer, Model, str, bytes],
) -> None:
    """A few kB of gzip that inflate into more well-formed stream than the limit allows: the
    provider reads every piece (none ends the answer) until the bound stops it."""
    server, model, content_type, piece = case
    line = piece % (b"x" * 1000)
    bomb = gzip.compress(line * (MAX_RESPONSE_BYTES // len(line) + 1))
    assert len(bomb) < 200_000
    server.push(Reply(body=bomb, content_type=content_type, headers={"Content-Encoding": "gzip"}))

    error = await streamed_error(model)

    assert error.retryable is False
    assert f"larger than {MAX_RESPONSE_BYTES} bytes" in error.message


ENDS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@given(
    parts=st.lists(st.one_of(st.sampled_from(ENDS), st.text("ab é", max_size=5)), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=10),
)
@example(parts=["a", "\r", "\n", "b"], cuts=[2])  # a CRLF cut in two is one line end
@example(parts=["a", "\r"], cuts=[2])  # a CR ending the text ends its last line
def test_lines_are_split_as_splitlines_splits_the_whole_text(
    parts: list[str], cuts: list[int]
) -> None:
    text = "".join(parts)
    splitter = LineSplitter()
    lines: list[str] = []
    start = 0
    for cut in sorted(min(c, len(text)) for c in cuts):
        lines += splitter.feed(text[start:cut])
        start = cut
    lines += splitter.feed(text[start:], final=True)

    assert lines == text.splitlines()
