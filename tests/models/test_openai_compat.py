"""OpenAI-compatible provider: wire format, SSE parsing and the details conformance can't see."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest

from astromesh.errors import ProviderError
from astromesh.models import (
    GenerationParams,
    Message,
    ModelResponse,
    ProviderSettings,
    TextDelta,
    ToolCall,
    ToolDefinition,
)
from astromesh.models.openai_compat import OpenAICompatModel, _sse_data, _StreamState
from tests.support.model_answers import Answer, streamed
from tests.support.model_servers import Reply, ScriptedOpenAIServer

WEATHER = ToolDefinition(
    name="get_weather",
    description="Current weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


def make_model(server: ScriptedOpenAIServer, **overrides: Any) -> OpenAICompatModel:
    settings: dict[str, Any] = {
        "provider_type": "openai_compat",
        "model": "gpt-test",
        "endpoint": server.url,
    }
    settings.update(overrides)
    return OpenAICompatModel(ProviderSettings(**settings))


@pytest.fixture
async def model(openai_server: ScriptedOpenAIServer) -> Any:
    provider = make_model(openai_server)
    yield provider
    await provider.aclose()


# -- request ----------------------------------------------------------------------------------


async def test_request_body_carries_model_messages_tools_and_params(
    openai_server: ScriptedOpenAIServer,
    answer: Answer,
) -> None:
    openai_server.push(Reply("ok"))
    model = make_model(
        openai_server, params=GenerationParams(temperature=0.2, max_tokens=64, seed=7)
    )

    await answer(
        model,
        [Message.system("be brief"), Message.user("weather in Paris?")],
        tools=[WEATHER],
        params=GenerationParams(top_p=0.9, stop=["END"]),
    )

    body = openai_server.requests[0]
    assert body["model"] == "gpt-test"
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather in Paris?"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 64
    assert body["top_p"] == 0.9
    assert body["stop"] == ["END"]
    assert body["seed"] == 7  # extra parameters pass through
    if answer is streamed:
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
    else:  # one JSON body, which always carries usage
        assert body["stream"] is False
        assert "stream_options" not in body
    await model.aclose()


async def test_unset_params_are_omitted(
    model: OpenAICompatModel, openai_server: Any, answer: Answer
) -> None:
    openai_server.push(Reply("ok"))

    await answer(model, [Message.user("hi")])

    body = openai_server.requests[0]
    assert not {"temperature", "top_p", "max_tokens", "stop", "tools"} & body.keys()


async def test_stream_usage_option_can_be_turned_off(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.push(Reply("ok"))
    model = make_model(openai_server, options={"stream_usage": False})

    response = await streamed(model, [Message.user("hi")])

    assert "stream_options" not in openai_server.requests[0]
    assert response.usage.estimated is True  # the server only reports usage when asked
    await model.aclose()


async def test_tool_result_round_trip(
    model: OpenAICompatModel, openai_server: Any, answer: Answer
) -> None:
    openai_server.push(
        Reply(tool_calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]),
        Reply("Paris 21C, Oslo 9C."),
    )
    history = [Message.user("weather in Paris and Oslo?")]

    first = await answer(model, history, tools=[WEATHER])
    history.append(first.as_message())
    for call, result in zip(first.tool_calls, ["21C", "9C"], strict=True):
        history.append(Message.tool(result, tool_call_id=call.id, name=call.name))
    second = await answer(model, history, tools=[WEATHER])

    assert second.content == "Paris 21C, Oslo 9C."
    sent = openai_server.requests[1]["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": first.tool_calls[0].id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": first.tool_calls[1].id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            },
        ],
    }
    assert sent[2] == {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "21C"}
    assert sent[3] == {"role": "tool", "tool_call_id": first.tool_calls[1].id, "content": "9C"}


async def test_assistant_text_next_to_tool_calls_is_kept(
    model: OpenAICompatModel, openai_server: Any, answer: Answer
) -> None:
    openai_server.push(Reply("ok"))
    call = ToolCall(id="c1", name="get_weather", arguments={})

    await answer(model, [Message.assistant("checking", [call])])

    wire = openai_server.requests[0]["messages"][0]
    assert wire["content"] == "checking"
    assert wire["tool_calls"][0]["function"]["arguments"] == "{}"


# -- response ---------------------------------------------------------------------------------


async def test_tool_arguments_arrive_in_fragments(
    openai_server: ScriptedOpenAIServer, answer: Answer
) -> None:
    openai_server.chunk_size = 2  # '{"city": "Reykjavik"}' arrives in 11 pieces
    openai_server.push(Reply(tool_calls=[("get_weather", {"city": "Reykjavik"})]))
    model = make_model(openai_server)

    response = await answer(model, [Message.user("?")], tools=[WEATHER])

    assert response.tool_calls == [
        ToolCall(id=response.tool_calls[0].id, name="get_weather", arguments={"city": "Reykjavik"})
    ]
    assert response.tool_calls[0].id.startswith("call_")
    await model.aclose()


async def test_invalid_tool_arguments_are_kept_raw_and_sent_back_verbatim(
    model: OpenAICompatModel, openai_server: Any, answer: Answer
) -> None:
    openai_server.push(Reply(tool_calls=[("get_weather", '{"city": "Par')]), Reply("sorry"))

    first = await answer(model, [Message.user("?")], tools=[WEATHER])
    await answer(model, [Message.user("?"), first.as_message()])

    assert first.tool_calls[0].arguments == {"_raw": '{"city": "Par'}
    echoed = openai_server.requests[1]["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert echoed == '{"city": "Par'


async def test_non_object_tool_arguments_are_kept_raw(
    model: OpenAICompatModel, openai_server: Any, answer: Answer
) -> None:
    openai_server.push(Reply(tool_calls=[("get_weather", '["Paris"]')]))

    response = await answer(model, [Message.user("?")], tools=[WEATHER])

    assert response.tool_calls[0].arguments == {"_raw": '["Paris"]'}


async def test_finish_reason_length_is_reported(
    model: OpenAICompatModel, openai_server: Any, answer: Answer
) -> None:
    openai_server.push(Reply("truncated by max_tokens", finish_reason="length"))

    response = await answer(model, [Message.user("?")])

    assert response.finish_reason == "length"


async def test_api_key_is_sent_as_bearer(
    openai_server: ScriptedOpenAIServer, answer: Answer
) -> None:
    openai_server.push(Reply("ok"), Reply("ok"))
    keyed = make_model(openai_server, api_key="sk-abc")
    anonymous = make_model(openai_server)

    await answer(keyed, [Message.user("hi")])
    await answer(anonymous, [Message.user("hi")])

    assert openai_server.request_headers[0]["authorization"] == "Bearer sk-abc"
    assert "authorization" not in openai_server.request_headers[1]
    await keyed.aclose()
    await anonymous.aclose()


async def test_api_key_is_absent_from_errors_and_logs(
    openai_server: ScriptedOpenAIServer, caplog: pytest.LogCaptureFixture, answer: Answer
) -> None:
    secret = "sk-live-SECRET-42"
    openai_server.push(
        Reply(f"Incorrect API key provided: {secret}", status=401),
        Reply("ok", stream_error=f"quota exceeded for key {secret}"),
    )
    model = make_model(openai_server, api_key=secret)
    caplog.set_level(logging.DEBUG)

    errors = []
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            await answer(model, [Message.user("hi")])
        errors.append(caught.value)

    assert errors[0].retryable is False and errors[0].status_code == 401
    for error in errors:
        assert secret not in str(error)
        assert "***" in str(error)
    assert secret not in caplog.text
    await model.aclose()


async def test_endpoint_trailing_slash_and_default(
    openai_server: ScriptedOpenAIServer, answer: Answer
) -> None:
    openai_server.push(Reply("ok"))
    model = make_model(openai_server, endpoint=openai_server.url + "/")

    assert (await answer(model, [Message.user("hi")])).content == "ok"
    assert model.endpoint == openai_server.url
    assert OpenAICompatModel(ProviderSettings("openai_compat", "m")).endpoint == (
        "http://127.0.0.1:8000/v1"
    )
    await model.aclose()


async def test_connection_is_kept_alive_between_calls(
    model: OpenAICompatModel, openai_server: Any, answer: Answer
) -> None:
    openai_server.push(Reply("one"), Reply("two"), Reply("three"))

    for _ in range(3):
        await answer(model, [Message.user("hi")])

    assert openai_server.connection_count == 1


async def test_a_cookie_the_server_sets_is_sent_back(
    model: OpenAICompatModel, openai_server: Any, answer: Answer
) -> None:
    # A hosted API's load balancer pins a client with a cookie; responses without one (a
    # local server's) skip the jar, which must not lose the cookie set before.
    openai_server.push(
        Reply("one", headers={"Set-Cookie": "lb=node-7; Path=/"}), Reply("two"), Reply("three")
    )

    for _ in range(3):
        await answer(model, [Message.user("hi")])

    assert "cookie" not in openai_server.request_headers[0]
    assert openai_server.request_headers[1]["cookie"] == "lb=node-7"
    assert openai_server.request_headers[2]["cookie"] == "lb=node-7"


async def test_server_ignoring_stream_gets_a_plain_completion(
    model: OpenAICompatModel, openai_server: Any
) -> None:
    openai_server.push(Reply("whole answer", stream=False, include_usage=False))

    events = [event async for event in model.stream([Message.user("hi")])]

    assert events[0] == TextDelta("whole answer")
    assert isinstance(events[1], ModelResponse)
    assert events[1].usage.estimated is True
    assert events[1].finish_reason == "stop"


# -- SSE parsing, against hand-written bodies ------------------------------------------------


def transport_for(body: bytes, content_type: str = "text/event-stream") -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": content_type})

    return httpx.MockTransport(handler)


def chunk(delta: dict[str, Any] | None = None, **extra: Any) -> str:
    payload: dict[str, Any] = {"choices": [{"index": 0, "delta": delta or {}}], **extra}
    return "data: " + json.dumps(payload) + "\n\n"


async def stream_body(body: str, content_type: str = "text/event-stream") -> list[Any]:
    model = OpenAICompatModel(ProviderSettings("openai_compat", "m", endpoint="http://x/v1"))
    model._client = httpx.AsyncClient(transport=transport_for(body.encode(), content_type))
    model._client_loop = asyncio.get_running_loop()
    try:
        return [event async for event in model.stream([Message.user("hi")])]
    finally:
        await model.aclose()


async def test_sse_comments_blank_data_and_multiline_events() -> None:
    body = (
        ": keep-alive comment\n\n"
        + "event: message\n"
        + chunk({"content": "Hel"})
        + 'data: {"choices": [{"index": 0,\ndata: "delta": {"content": "lo"}}]}\n\n'
        + chunk({}, usage=None)
        + "data: "
        + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        + "\n\n"
        + "data: [DONE]\n\n"
    )

    events = await stream_body(body)

    assert [e.text for e in events[:-1]] == ["Hel", "lo"]
    assert events[-1].content == "Hello"
    assert events[-1].finish_reason == "stop"


async def test_stream_without_done_or_finish_reason_is_a_cut() -> None:
    body = chunk({"content": "Hel"}) + chunk({"content": "lo"})

    with pytest.raises(ProviderError) as caught:
        await stream_body(body)

    assert caught.value.retryable is True


async def test_unterminated_last_event_is_dropped_not_parsed() -> None:
    body = chunk({"content": "Hel"}) + 'data: {"choices": [{"ind'

    with pytest.raises(ProviderError) as caught:
        await stream_body(body)

    assert caught.value.retryable is True
    assert "ended before" in caught.value.message


async def test_finish_reason_without_done_is_accepted() -> None:
    """Some servers close after the finish chunk without ``[DONE]``; the answer is whole."""
    body = (
        chunk({"content": "Hi"})
        + "data: "
        + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        + "\n\n"
    )

    events = await stream_body(body)

    assert events[-1].content == "Hi"
    assert events[-1].usage.estimated is True


async def test_malformed_chunk_is_not_retryable() -> None:
    with pytest.raises(ProviderError) as caught:
        await stream_body("data: {not json}\n\n")

    assert caught.value.retryable is False
    assert "malformed" in caught.value.message


async def test_error_event_with_client_status_is_not_retryable() -> None:
    body = 'data: {"error": {"message": "context too long", "code": 400}}\n\n'

    with pytest.raises(ProviderError) as caught:
        await stream_body(body)

    assert caught.value.retryable is False
    assert caught.value.status_code == 400


async def test_malformed_json_completion_is_not_retryable() -> None:
    with pytest.raises(ProviderError) as caught:
        await stream_body("<html>oops</html>", content_type="application/json")

    assert caught.value.retryable is False


def test_tool_deltas_without_index_are_grouped_by_id() -> None:
    state = _StreamState()
    for delta in [
        {"id": "a", "function": {"name": "f", "arguments": '{"x"'}},
        {"function": {"arguments": ": 1}"}},
        {"id": "b", "function": {"name": "g", "arguments": "{}"}},
        {"id": "b", "function": {"arguments": ""}},
    ]:
        state.add_tool_delta(delta)

    calls = [(p.id, p.name, p.arguments) for p in state.tool_calls.values()]
    assert calls == [("a", "f", '{"x": 1}'), ("b", "g", "{}")]


async def test_missing_tool_call_ids_are_synthesized_uniquely() -> None:
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    body = (
        chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]})
        + chunk({"tool_calls": [{"index": 1, "function": {"name": "g", "arguments": "{}"}}]})
        + "data: "
        + json.dumps(finish)
        + "\n\n"
    )

    events = await stream_body(body)

    ids = [call.id for call in events[-1].tool_calls]
    assert ids == ["call_1", "call_2"]


async def test_sse_data_helper_strips_one_leading_space() -> None:
    response = httpx.Response(200, content=b"data:  two spaces\n\ndata:none\n\n")
    assert [event async for event in _sse_data(response.aiter_lines())] == [" two spaces", "none"]
