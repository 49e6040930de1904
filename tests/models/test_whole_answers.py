"""Non-streamed calls (``Model.complete``) against hostile and malformed answers.

What a backend sends back is not ours: a registered agent's endpoint may be anything that
answers HTTP. A whole answer is read only up to ``MAX_RESPONSE_BYTES`` (decoded, so a small
gzip body cannot inflate past it), an error body only up to ``MAX_ERROR_BODY_BYTES``, and
every malformed shape is a ``ProviderError`` with the flag the streamed path gives it: the
request reached a backend that answered nonsense (not retryable), or the answer was cut or
the server reported a failure (retryable).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from astromesh.errors import ProviderError
from astromesh.models import Message, Model, ProviderSettings, TextDelta, create_model
from astromesh.models._http import MAX_ERROR_BODY_BYTES, MAX_RESPONSE_BYTES
from astromesh.models.router import ModelRouter, RetryPolicy
from tests.support.model_servers import (
    Reply,
    ScriptedOllamaServer,
    ScriptedOpenAIServer,
    ScriptedTGIServer,
)

HELLO = [Message.user("hi")]

ScriptedServer = ScriptedOpenAIServer | ScriptedOllamaServer | ScriptedTGIServer


@dataclass
class Case:
    server: ScriptedServer
    provider_type: str
    options: dict[str, Any]

    def model(self) -> Model:
        return create_model(
            ProviderSettings(
                self.provider_type,
                "scripted",
                endpoint=self.server.url,
                timeout_seconds=5.0,
                options=self.options,
            )
        )


CASES: dict[str, tuple[type[ScriptedServer], str, dict[str, Any]]] = {
    "openai_compat": (ScriptedOpenAIServer, "openai_compat", {}),
    "ollama": (ScriptedOllamaServer, "ollama", {}),
    "tgi_generate": (ScriptedTGIServer, "hf_tgi", {"chat_template": "simple"}),
    "tgi_messages": (ScriptedTGIServer, "hf_tgi", {"api": "messages"}),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    server_class, provider_type, options = CASES[request.param]
    with server_class() as server:
        yield Case(server, provider_type, options)


async def refused(case: Case, reply: Reply) -> ProviderError:
    """The error one whole call ends in when the server answers ``reply``."""
    case.server.push(reply)
    model = case.model()
    try:
        with pytest.raises(ProviderError) as caught:
            await model.complete(HELLO)
    finally:
        await model.aclose()
    return caught.value


async def test_a_whole_answer_is_asked_for_without_streaming(case: Case) -> None:
    case.server.push(Reply("all at once", tokens_in=5, tokens_out=3))
    model = case.model()

    response = await model.complete(HELLO)

    assert (response.content, response.usage.tokens_out) == ("all at once", 3)
    request = case.server.requests[0]
    if case.options.get("api") == "messages" or case.provider_type == "openai_compat":
        assert request["stream"] is False and "stream_options" not in request
        assert case.server.request_headers[0]["accept"] == "application/json"
    elif case.provider_type == "ollama":
        assert request["stream"] is False
    else:
        assert case.server.request_paths == ["/generate"]
    await model.aclose()


@pytest.mark.parametrize(
    "body",
    ["{not json", "", "[1, 2]", '"text"', "null", "[" * 100_000, b"\xff\xfe{}"],
    ids=["broken", "empty", "array", "string", "null", "deep", "bad-utf8"],
)
async def test_malformed_json_is_not_retryable(case: Case, body: str | bytes) -> None:
    error = await refused(case, Reply(body=body))

    assert error.retryable is False
    assert error.status_code is None
    assert len(error.message) < 1000


@pytest.mark.parametrize(
    "body",
    [
        {"choices": []},
        {"choices": "abc"},
        {"choices": 7},
        {"choices": [{"message": "hello"}]},
        {"choices": [{"message": {"content": {"nested": True}}}]},
        {"choices": [{"message": {"content": "x", "tool_calls": "add"}}]},
        {"choices": [{"message": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]},
    ],
    ids=[
        "no-choice",
        "choices-str",
        "choices-int",
        "message-str",
        "content-obj",
        "calls-str",
        "call-unnamed",
    ],
)
async def test_openai_answers_of_the_wrong_shape_are_not_retryable(
    openai_server: ScriptedOpenAIServer, body: dict[str, Any]
) -> None:
    error = await refused(Case(openai_server, "openai_compat", {}), Reply(body=json.dumps(body)))

    assert error.retryable is False
    assert "scripted" in error.model


@pytest.mark.parametrize(
    "body",
    [
        {"message": "hello", "done": True},
        {"message": {"content": ["a"]}, "done": True},
        {"message": {"content": "", "tool_calls": [{"function": {}}]}, "done": True},
    ],
    ids=["message-str", "content-list", "call-unnamed"],
)
async def test_ollama_answers_of_the_wrong_shape_are_not_retryable(
    ollama_server: ScriptedOllamaServer, body: dict[str, Any]
) -> None:
    error = await refused(Case(ollama_server, "ollama", {}), Reply(body=json.dumps(body)))

    assert error.retryable is False


async def test_an_ollama_answer_that_never_says_done_is_retryable(
    ollama_server: ScriptedOllamaServer,
) -> None:
    """As when a stream ends before its ``done`` line: the answer is not complete."""
    body = json.dumps({"message": {"role": "assistant", "content": "half"}, "done": False})

    error = await refused(Case(ollama_server, "ollama", {}), Reply(body=body))

    assert error.retryable is True


@pytest.mark.parametrize(
    "body", [{"details": None}, [], {"generated_text": None}], ids=["no-text", "empty", "null"]
)
async def test_a_tgi_generate_answer_without_text_is_not_retryable(body: Any) -> None:
    with ScriptedTGIServer() as server:
        case = Case(server, "hf_tgi", {"chat_template": "simple"})
        error = await refused(case, Reply(body=json.dumps(body)))

    assert error.retryable is False


async def test_an_answer_larger_than_the_limit_is_refused_unread(case: Case) -> None:
    body = b'{"pad": "' + b"x" * MAX_RESPONSE_BYTES + b'"}'

    error = await refused(case, Reply(body=body))

    assert error.retryable is False
    assert f"larger than {MAX_RESPONSE_BYTES} bytes" in error.message


async def test_a_compressed_answer_is_bounded_by_its_decoded_size(case: Case) -> None:
    """A gzip body of a few kB that inflates past the limit (a decompression bomb)."""
    bomb = gzip.compress(b'{"pad": "' + b"x" * (MAX_RESPONSE_BYTES + 1) + b'"}')
    assert len(bomb) < 100_000

    error = await refused(case, Reply(body=bomb, headers={"Content-Encoding": "gzip"}))

    assert error.retryable is False
    assert f"larger than {MAX_RESPONSE_BYTES} bytes" in error.message


async def test_a_huge_error_body_is_read_only_in_part(case: Case) -> None:
    error = await refused(case, Reply("overloaded " * (MAX_ERROR_BODY_BYTES // 4), status=503))

    assert error.retryable is True and error.status_code == 503
    assert "HTTP 503" in error.message and "overloaded" in error.message
    assert len(error.message) < 1000


async def test_an_answer_cut_half_way_is_retryable(case: Case) -> None:
    error = await refused(case, Reply("a complete answer never arrives", cut_after_chunks=0))

    assert error.retryable is True


async def test_an_error_inside_a_200_answer_is_retryable(case: Case) -> None:
    error = await refused(case, Reply(stream_error="the model runner crashed"))

    assert error.retryable is True
    assert "the model runner crashed" in error.message


async def test_a_server_that_streams_anyway_is_read_as_a_stream(case: Case) -> None:
    if case.provider_type == "hf_tgi" and case.options.get("api") != "messages":
        # /generate has no streamed form; its SSE route is another path.
        error = await refused(case, Reply(body="data: {}\n\n", content_type="text/event-stream"))
        assert error.retryable is False
        return
    case.server.push(Reply("streamed after all", tool_calls=[("add", {"a": 1})], stream=True))
    model = case.model()

    response = await model.complete(HELLO)

    assert response.content == "streamed after all"
    assert [(call.name, call.arguments) for call in response.tool_calls] == [("add", {"a": 1})]
    await model.aclose()


async def test_a_cut_stream_sent_to_a_whole_request_is_retryable(
    openai_server: ScriptedOpenAIServer,
) -> None:
    """An event stream without its ``[DONE]`` or finish reason, read whole."""
    body = 'data: {"choices": [{"index": 0, "delta": {"content": "half"}}]}\n\n'

    error = await refused(
        Case(openai_server, "openai_compat", {}),
        Reply(body=body, content_type="text/event-stream"),
    )

    assert error.retryable is True


# -- through the router ----------------------------------------------------------------------


async def test_the_router_asks_for_whole_answers_and_falls_back_the_same(
    openai_server: ScriptedOpenAIServer, ollama_server: ScriptedOllamaServer
) -> None:
    openai_server.push(Reply(body="{not json"), Reply("cut", cut_after_chunks=0))
    ollama_server.push(Reply("from the fallback", tokens_in=3, tokens_out=2))
    first = create_model(
        ProviderSettings("openai_compat", "gpt-4o-mini", endpoint=openai_server.url)
    )
    second = create_model(ProviderSettings("ollama", "llama3.1:8b", endpoint=ollama_server.url))
    router = ModelRouter({"default": [first, second]}, retry=RetryPolicy(retries=0))

    with pytest.raises(ProviderError) as caught:  # malformed: the backend answered, no fallback
        await router.complete(HELLO)
    assert caught.value.retryable is False
    events = [event async for event in router.stream(HELLO, tokens=False)]  # cut: falls back

    assert not any(isinstance(event, TextDelta) for event in events)
    [response] = events
    assert response.content == "from the fallback"
    assert response.cost is not None
    assert [r["stream"] for r in openai_server.requests + ollama_server.requests] == [
        False,
        False,
        False,
    ]
    await router.aclose()
