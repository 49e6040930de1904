"""Ollama provider: wire format, NDJSON parsing and the details conformance can't see."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from astromesh.errors import ProviderError
from astromesh.models import (
    GenerationParams,
    Message,
    ProviderSettings,
    ToolCall,
    ToolDefinition,
)
from astromesh.models.ollama import OllamaModel
from tests.support.model_answers import Answer, streamed
from tests.support.model_servers import Reply, ScriptedOllamaServer

WEATHER = ToolDefinition(
    name="get_weather",
    description="Current weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


def make_model(server: ScriptedOllamaServer, **overrides: Any) -> OllamaModel:
    settings: dict[str, Any] = {
        "provider_type": "ollama",
        "model": "qwen2.5:0.5b",
        "endpoint": server.url,
    }
    settings.update(overrides)
    return OllamaModel(ProviderSettings(**settings))


@pytest.fixture
async def model(ollama_server: ScriptedOllamaServer) -> Any:
    provider = make_model(ollama_server)
    yield provider
    await provider.aclose()


# -- request ----------------------------------------------------------------------------------


async def test_params_map_to_ollama_options(
    ollama_server: ScriptedOllamaServer, answer: Answer
) -> None:
    ollama_server.push(Reply("ok"))
    model = make_model(
        ollama_server, params=GenerationParams(temperature=0.3, max_tokens=128, num_ctx=4096)
    )

    await answer(
        model,
        [Message.user("hi")],
        params=GenerationParams(top_p=0.8, stop=["\n\n"], keep_alive="5m", format="json"),
    )

    body = ollama_server.requests[0]
    assert body["model"] == "qwen2.5:0.5b"
    assert body["stream"] is (answer is streamed)
    assert body["options"] == {
        "temperature": 0.3,
        "top_p": 0.8,
        "num_predict": 128,
        "stop": ["\n\n"],
        "num_ctx": 4096,
    }
    # Ollama reads these from the request itself, not from options.
    assert body["keep_alive"] == "5m"
    assert body["format"] == "json"
    await model.aclose()


async def test_no_options_when_no_params(
    model: OllamaModel, ollama_server: Any, answer: Answer
) -> None:
    ollama_server.push(Reply("ok"))

    await answer(model, [Message.user("hi")])

    assert "options" not in ollama_server.requests[0]
    assert "tools" not in ollama_server.requests[0]


async def test_tools_and_tool_result_round_trip(
    model: OllamaModel, ollama_server: Any, answer: Answer
) -> None:
    ollama_server.push(
        Reply(tool_calls=[("get_weather", {"city": "Lima"})]),
        Reply("Lima is 18C."),
    )
    history = [Message.system("be brief"), Message.user("weather in Lima?")]

    first = await answer(model, history, tools=[WEATHER])
    call = first.tool_calls[0]
    history += [first.as_message(), Message.tool("18C", tool_call_id=call.id, name=call.name)]
    second = await answer(model, history, tools=[WEATHER])

    assert second.content == "Lima is 18C."
    assert ollama_server.requests[0]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    assert ollama_server.requests[1]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather in Lima?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": call.id, "function": {"name": "get_weather", "arguments": {"city": "Lima"}}}
            ],
        },
        {"role": "tool", "content": "18C", "tool_name": "get_weather", "name": "get_weather"},
    ]


async def test_tool_call_ids_are_synthesized_and_unique_across_turns(
    model: OllamaModel, ollama_server: Any, answer: Answer
) -> None:
    ollama_server.push(
        Reply(tool_calls=[("get_weather", {"city": "A"}), ("get_weather", {"city": "B"})]),
        Reply(tool_calls=[("get_weather", {"city": "C"})]),
    )

    first = await answer(model, [Message.user("?")], tools=[WEATHER])
    second = await answer(model, [Message.user("?")], tools=[WEATHER])

    assert [c.id for c in first.tool_calls + second.tool_calls] == ["call_1", "call_2", "call_3"]
    assert [c.arguments["city"] for c in first.tool_calls] == ["A", "B"]


async def test_string_tool_arguments_are_parsed(
    model: OllamaModel, ollama_server: Any, answer: Answer
) -> None:
    ollama_server.push(
        Reply(tool_calls=[("get_weather", '{"city": "Rome"}'), ("get_weather", "not json")])
    )

    response = await answer(model, [Message.user("?")], tools=[WEATHER])

    assert [c.arguments for c in response.tool_calls] == [{"city": "Rome"}, {"_raw": "not json"}]


async def test_done_reason_is_the_finish_reason(
    model: OllamaModel, ollama_server: Any, answer: Answer
) -> None:
    ollama_server.push(Reply("cut short", finish_reason="length"))

    response = await answer(model, [Message.user("?")])

    assert response.finish_reason == "length"


async def test_model_not_found_is_not_retryable(
    model: OllamaModel, ollama_server: Any, answer: Answer
) -> None:
    ollama_server.push(Reply("model 'qwen2.5:0.5b' not found, try pulling it first", status=404))

    with pytest.raises(ProviderError) as caught:
        await answer(model, [Message.user("?")])

    assert caught.value.retryable is False
    assert caught.value.status_code == 404
    assert "try pulling it first" in caught.value.message


async def test_api_key_is_sent_as_bearer_when_set(
    ollama_server: ScriptedOllamaServer, answer: Answer
) -> None:
    ollama_server.push(Reply("ok"), Reply("ok"))
    hosted = make_model(ollama_server, api_key="ollama-key")
    local = make_model(ollama_server)

    await answer(hosted, [Message.user("hi")])
    await answer(local, [Message.user("hi")])

    assert ollama_server.request_headers[0]["authorization"] == "Bearer ollama-key"
    assert "authorization" not in ollama_server.request_headers[1]
    await hosted.aclose()
    await local.aclose()


async def test_default_endpoint_and_trailing_slash(
    ollama_server: ScriptedOllamaServer, answer: Answer
) -> None:
    assert OllamaModel(ProviderSettings("ollama", "m")).endpoint == "http://127.0.0.1:11434"
    ollama_server.push(Reply("ok"))
    model = make_model(ollama_server, endpoint=ollama_server.url + "/")

    assert (await answer(model, [Message.user("hi")])).content == "ok"
    await model.aclose()


async def test_connection_is_kept_alive_between_calls(
    model: OllamaModel, ollama_server: Any, answer: Answer
) -> None:
    ollama_server.push(Reply("one"), Reply("two"))

    await answer(model, [Message.user("hi")])
    await answer(model, [Message.user("hi")])

    assert ollama_server.connection_count == 1


# -- NDJSON parsing, against hand-written bodies ---------------------------------------------


async def stream_body(body: str) -> list[Any]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=body.encode(), headers={"content-type": "application/x-ndjson"}
        )

    model = OllamaModel(ProviderSettings("ollama", "m", endpoint="http://x"))
    model._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    model._client_loop = asyncio.get_running_loop()
    try:
        return [event async for event in model.stream([Message.user("hi")])]
    finally:
        await model.aclose()


def line(**fields: Any) -> str:
    return json.dumps(fields) + "\n"


async def test_stream_without_done_is_a_cut() -> None:
    body = line(message={"role": "assistant", "content": "Hel"}, done=False)

    with pytest.raises(ProviderError) as caught:
        await stream_body(body)

    assert caught.value.retryable is True


async def test_blank_lines_are_skipped_and_ids_kept_when_sent() -> None:
    call = {"id": "tc_9", "function": {"name": "f", "arguments": {"x": 1}}}
    body = (
        line(message={"role": "assistant", "content": "Hi"}, done=False)
        + "\n"
        + line(message={"role": "assistant", "content": "", "tool_calls": [call]}, done=False)
        + line(message={"role": "assistant", "content": ""}, done=True, done_reason="stop")
    )

    events = await stream_body(body)

    assert events[-1].content == "Hi"
    assert events[-1].tool_calls == [ToolCall(id="tc_9", name="f", arguments={"x": 1})]
    assert events[-1].finish_reason == "tool_calls"


async def test_partial_usage_is_completed_by_estimate() -> None:
    """Ollama omits ``prompt_eval_count`` when the whole prompt came from its cache."""
    body = line(message={"role": "assistant", "content": "Hi"}, done=True, eval_count=3)

    events = await stream_body(body)

    assert events[-1].usage.tokens_out == 3
    assert events[-1].usage.tokens_in >= 1
    assert events[-1].usage.estimated is True


async def test_malformed_line_is_not_retryable() -> None:
    with pytest.raises(ProviderError) as caught:
        await stream_body("this is not json\n")

    assert caught.value.retryable is False


async def test_error_line_raises_with_its_message() -> None:
    body = line(message={"role": "assistant", "content": "Hi"}, done=False) + line(
        error="llama runner process has terminated"
    )

    with pytest.raises(ProviderError) as caught:
        await stream_body(body)

    assert caught.value.retryable is True
    assert "llama runner process has terminated" in caught.value.message
