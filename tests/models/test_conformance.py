"""Behaviour every HTTP provider must share, run against each protocol's scripted server.

The router and the patterns rely on these: deltas then one final response, usage always
present (estimated when the backend is silent), and errors whose ``retryable`` flag says
whether trying another candidate makes sense.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from astromesh.errors import ProviderError, ProviderTimeout
from astromesh.models import (
    GenerationParams,
    Message,
    Model,
    ModelResponse,
    ProviderSettings,
    TextDelta,
    ToolDefinition,
    create_model,
)
from astromesh.models.hf_tgi import TGIModel
from astromesh.models.llamacpp import LlamaCppModel
from astromesh.models.ollama import OllamaModel
from astromesh.models.openai_compat import LlamaCppServerModel, OpenAICompatModel, VLLMModel
from tests.support.model_answers import Answer, streamed, whole
from tests.support.model_servers import (
    Reply,
    ScriptedOllamaServer,
    ScriptedOpenAIServer,
    ScriptedTGIServer,
)

ScriptedServer = ScriptedOpenAIServer | ScriptedOllamaServer | ScriptedTGIServer

# provider type -> (scripted server, suffix of the endpoint on that server's URL). TGI runs here
# through its messages API (endpoint ending in /v1); its native /generate_stream, which has no
# tool calls, has its own suite in test_hf_tgi.py. vLLM and llama.cpp's server speak OpenAI's.
CASES: dict[str, tuple[type[ScriptedServer], str]] = {
    "openai_compat": (ScriptedOpenAIServer, ""),
    "ollama": (ScriptedOllamaServer, ""),
    "vllm": (ScriptedOpenAIServer, ""),
    "llamacpp": (ScriptedOpenAIServer, ""),
    "hf_tgi": (ScriptedTGIServer, "/v1"),
}

ADD = ToolDefinition(
    name="add",
    description="Add two integers.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)


@dataclass
class Case:
    """One provider wired to its scripted server."""

    server: ScriptedServer
    provider_type: str
    suffix: str = ""

    @property
    def openai_wire(self) -> bool:
        return self.provider_type != "ollama"

    def model(self, **overrides: Any) -> Model:
        settings: dict[str, Any] = {
            "provider_type": self.provider_type,
            "model": "scripted-model",
            "endpoint": self.server.url + self.suffix,
            "timeout_seconds": 5.0,
        }
        settings.update(overrides)
        return create_model(ProviderSettings(**settings))


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    server_class, suffix = CASES[request.param]
    with server_class() as server:
        yield Case(server, request.param, suffix)


def http_client(model: Model) -> Any:
    """The provider's pooled client (TGI's messages API keeps it on its OpenAI delegate)."""
    inner = getattr(model, "_messages", None) or getattr(model, "_remote", None) or model
    return inner._client


async def collect(model: Model, messages: list[Message], **kwargs: Any) -> list[Any]:
    return [event async for event in model.stream(messages, **kwargs)]


HELLO = [Message.user("hi")]


def test_registry_builds_each_provider() -> None:
    assert isinstance(create_model(ProviderSettings("openai_compat", "m")), OpenAICompatModel)
    assert isinstance(create_model(ProviderSettings("ollama", "m")), OllamaModel)
    assert isinstance(create_model(ProviderSettings("vllm", "m")), VLLMModel)
    assert isinstance(create_model(ProviderSettings("hf_tgi", "m")), TGIModel)
    assert OpenAICompatModel.supports_native_tools and OllamaModel.supports_native_tools
    remote = create_model(ProviderSettings("llamacpp", "m", endpoint="http://127.0.0.1:1/v1"))
    assert isinstance(remote, LlamaCppModel) and remote.supports_native_tools


def test_each_type_has_its_own_defaults() -> None:
    assert create_model(ProviderSettings("vllm", "m")).endpoint == "http://127.0.0.1:8000/v1"
    tgi = create_model(ProviderSettings("hf_tgi", "m"))
    assert tgi.endpoint == "http://127.0.0.1:8080" and tgi.api == "generate"
    assert not tgi.supports_native_tools
    assert create_model(ProviderSettings("hf_tgi", "m", endpoint="http://h:80/v1")).api == (
        "messages"
    )
    assert LlamaCppServerModel(ProviderSettings("llamacpp", "m")).endpoint == (
        "http://127.0.0.1:8080/v1"
    )


async def test_streams_deltas_then_one_final_response(case: Case) -> None:
    case.server.push(Reply("The quick brown fox jumps."))
    model = case.model(name="local")

    events = await collect(model, HELLO)

    deltas, final = events[:-1], events[-1]
    assert len(deltas) >= 5 and all(isinstance(e, TextDelta) for e in deltas)
    assert isinstance(final, ModelResponse)
    assert "".join(d.text for d in deltas) == final.content == "The quick brown fox jumps."
    assert final.provider == "local"
    assert final.model == "scripted-model"
    assert final.finish_reason == "stop"
    assert final.tool_calls == []
    assert final.latency_ms > 0
    await model.aclose()


async def test_complete_returns_the_final_response(case: Case, answer: Answer) -> None:
    case.server.push(Reply("done"))
    model = case.model()

    response = await answer(model, HELLO)

    assert response.content == "done"
    assert response.provider == case.provider_type  # no name: the label is the type
    await model.aclose()


async def test_tool_calls_are_parsed(case: Case, answer: Answer) -> None:
    case.server.push(Reply(tool_calls=[("add", {"a": 2, "b": 3}), ("add", {"a": 10, "b": -4})]))
    model = case.model()

    response = await answer(model, HELLO, tools=[ADD])

    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("add", {"a": 2, "b": 3}),
        ("add", {"a": 10, "b": -4}),
    ]
    assert len({c.id for c in response.tool_calls}) == 2
    assert response.finish_reason == "tool_calls"
    assert response.content == ""
    assert case.server.requests[0]["tools"][0]["function"]["name"] == "add"
    await model.aclose()


async def test_text_and_tool_call_in_one_turn(case: Case) -> None:
    case.server.push(Reply("Let me add.", tool_calls=[("add", {"a": 1, "b": 1})]))
    model = case.model()

    events = await collect(model, HELLO, tools=[ADD])

    final = events[-1]
    assert "".join(e.text for e in events[:-1]) == final.content == "Let me add."
    assert final.tool_calls[0].arguments == {"a": 1, "b": 1}
    await model.aclose()


async def test_no_tools_field_without_tools(case: Case) -> None:
    case.server.push(Reply("ok"), Reply("ok"))
    model = case.model()

    await streamed(model, HELLO)
    await whole(model, HELLO)

    assert ["tools" in request for request in case.server.requests] == [False, False]
    assert [request["stream"] for request in case.server.requests] == [True, False]
    await model.aclose()


async def test_usage_is_read_from_the_response(case: Case, answer: Answer) -> None:
    case.server.push(Reply("ok", tokens_in=123, tokens_out=45))
    model = case.model()

    response = await answer(model, HELLO)

    assert (response.usage.tokens_in, response.usage.tokens_out) == (123, 45)
    assert response.usage.estimated is False
    await model.aclose()


async def test_usage_is_estimated_when_the_server_reports_none(case: Case, answer: Answer) -> None:
    case.server.push(Reply("x" * 40, include_usage=False))
    model = case.model()

    response = await answer(model, [Message.user("y" * 80)])

    assert response.usage.estimated is True
    assert response.usage.tokens_out == 10
    assert response.usage.tokens_in >= 20
    await model.aclose()


async def test_non_streamed_answer_is_accepted(case: Case) -> None:
    case.server.push(Reply("all at once", tool_calls=[("add", {"a": 1, "b": 2})], stream=False))
    model = case.model()

    events = await collect(model, HELLO, tools=[ADD])

    assert events[0] == TextDelta("all at once")
    final = events[-1]
    assert final.content == "all at once"
    assert final.tool_calls[0].arguments == {"a": 1, "b": 2}
    assert final.usage.tokens_in == 11 and not final.usage.estimated
    await model.aclose()


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
async def test_transient_statuses_are_retryable(case: Case, answer: Answer, status: int) -> None:
    case.server.push(Reply("backend overloaded, try later", status=status))
    model = case.model()

    with pytest.raises(ProviderError) as caught:
        await answer(model, HELLO)

    assert caught.value.retryable is True
    assert caught.value.status_code == status
    assert f"HTTP {status}" in caught.value.message
    assert "backend overloaded, try later" in caught.value.message
    await model.aclose()


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_client_errors_are_not_retryable(case: Case, answer: Answer, status: int) -> None:
    case.server.push(Reply("bad request: unknown field", status=status))
    model = case.model()

    with pytest.raises(ProviderError) as caught:
        await answer(model, HELLO)

    assert caught.value.retryable is False
    assert caught.value.status_code == status
    assert "bad request: unknown field" in caught.value.message
    assert not isinstance(caught.value, ProviderTimeout)
    await model.aclose()


async def test_slow_server_raises_provider_timeout(case: Case, answer: Answer) -> None:
    case.server.push(Reply("too late", delay=3.0))
    model = case.model(timeout_seconds=0.3)

    with pytest.raises(ProviderTimeout) as caught:
        await answer(model, HELLO)

    assert caught.value.retryable is True
    assert "timed out" in caught.value.message
    await model.aclose()


async def test_stall_in_the_middle_of_a_stream_raises_provider_timeout(case: Case) -> None:
    case.server.push(Reply("slow words arriving", chunk_delay=2.0))
    model = case.model(timeout_seconds=0.3)
    seen: list[Any] = []

    with pytest.raises(ProviderTimeout) as caught:
        async for event in model.stream(HELLO):
            seen.append(event)

    assert caught.value.retryable is True
    assert all(isinstance(e, TextDelta) for e in seen)
    await model.aclose()


async def test_slow_but_steady_stream_is_not_a_timeout(case: Case) -> None:
    """The timeout bounds each wait for data, not the whole answer."""
    case.server.push(Reply("steady stream of words", chunk_delay=0.1))
    model = case.model(timeout_seconds=0.3)

    response = await streamed(model, HELLO)

    assert response.content == "steady stream of words"
    await model.aclose()


@pytest.mark.parametrize("cut_after", [0, 1, 3])
async def test_cut_stream_is_a_retryable_error_not_a_short_answer(
    case: Case, cut_after: int
) -> None:
    case.server.push(Reply("a long answer that will never finish", cut_after_chunks=cut_after))
    model = case.model()
    seen: list[Any] = []

    with pytest.raises(ProviderError) as caught:
        async for event in model.stream(HELLO):
            seen.append(event)

    assert caught.value.retryable is True
    assert not any(isinstance(e, ModelResponse) for e in seen)
    await model.aclose()


async def test_cut_during_tool_call_is_retryable(case: Case, answer: Answer) -> None:
    # Ollama sends a tool call as one line; OpenAI as a head then argument fragments.
    cut_after = 1 if case.provider_type == "ollama" else 3
    case.server.push(Reply(tool_calls=[("add", {"a": 1, "b": 2})], cut_after_chunks=cut_after))
    model = case.model()

    with pytest.raises(ProviderError) as caught:
        await answer(model, HELLO, tools=[ADD])

    assert caught.value.retryable is True
    await model.aclose()


async def test_error_inside_the_stream_raises(case: Case, answer: Answer) -> None:
    case.server.push(Reply("partial", stream_error="model runner crashed"))
    model = case.model()

    with pytest.raises(ProviderError) as caught:
        await answer(model, HELLO)

    assert caught.value.retryable is True
    assert "model runner crashed" in caught.value.message
    await model.aclose()


async def test_connection_refused_is_retryable(
    case: Case, answer: Answer, closed_port_url: str
) -> None:
    endpoint = closed_port_url + ("/v1" if case.openai_wire else "")
    model = case.model(endpoint=endpoint)

    with pytest.raises(ProviderError) as caught:
        await answer(model, HELLO)

    assert caught.value.retryable is True
    assert not isinstance(caught.value, ProviderTimeout)
    assert caught.value.status_code is None
    await model.aclose()


async def test_empty_queue_answers_500_with_a_clear_message(case: Case, answer: Answer) -> None:
    model = case.model()

    with pytest.raises(ProviderError) as caught:
        await answer(model, HELLO)

    assert caught.value.status_code == 500
    assert "no scripted reply left" in caught.value.message
    await model.aclose()


async def test_health(case: Case, closed_port_url: str) -> None:
    model = case.model()
    assert await model.health() is True

    case.server.healthy = False
    assert await model.health() is False
    await model.aclose()

    down = case.model(endpoint=closed_port_url)
    assert await down.health() is False
    await down.aclose()


async def test_one_client_is_reused_and_closed(case: Case, answer: Answer) -> None:
    case.server.push(Reply("one"), Reply("two"), Reply("three"))
    model = case.model()

    await answer(model, HELLO)
    client = http_client(model)
    await answer(model, HELLO)
    assert http_client(model) is client

    await model.aclose()
    assert client is not None and client.is_closed
    assert (await answer(model, HELLO)).content == "three"  # usable again after aclose
    await model.aclose()


def test_provider_survives_a_new_event_loop(case: Case) -> None:
    """A CLI or Lambda may run each request in its own ``asyncio.run``."""
    case.server.push(Reply("first"), Reply("second"))
    model = case.model()

    first = asyncio.run(model.complete(HELLO))
    second = asyncio.run(model.complete(HELLO))

    assert (first.content, second.content) == ("first", "second")
    asyncio.run(model.aclose())


async def test_call_params_override_the_configured_defaults(case: Case, answer: Answer) -> None:
    case.server.push(Reply("ok"))
    model = case.model(params=GenerationParams(temperature=0.1, top_p=0.5))

    await answer(model, HELLO, params=GenerationParams(temperature=0.9))

    body = case.server.requests[0]
    sampling = body["options"] if case.provider_type == "ollama" else body
    assert sampling["temperature"] == 0.9
    assert sampling["top_p"] == 0.5
    await model.aclose()


async def test_api_key_never_appears_in_errors(case: Case, answer: Answer) -> None:
    secret = "sk-test-0123456789abcdef"
    case.server.push(Reply(f"Incorrect API key provided: {secret}", status=401))
    model = case.model(api_key=secret)

    with pytest.raises(ProviderError) as caught:
        await answer(model, HELLO)

    assert secret not in str(caught.value)
    assert secret not in caught.value.message
    assert "Incorrect API key provided: ***" in caught.value.message
    assert secret not in repr(model.settings)
    await model.aclose()
