"""TGI's native API (/generate_stream, SSE) against the scripted TGI server.

The messages API (/v1/chat/completions) runs the shared conformance suite; this covers what
only the native route has: the chat template, TGI's parameters, ``details`` usage and errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from astromesh.errors import ConfigurationError, ProviderError, ProviderTimeout
from astromesh.models import (
    GenerationParams,
    Message,
    ModelResponse,
    ProviderSettings,
    TextDelta,
    ToolDefinition,
)
from astromesh.models.hf_tgi import TGIModel, render_chatml
from tests.support.model_answers import Answer, streamed
from tests.support.model_servers import Reply, ScriptedTGIServer

HELLO = [Message.system("Be brief."), Message.user("hi")]


@pytest.fixture
def tgi() -> Iterator[ScriptedTGIServer]:
    with ScriptedTGIServer() as server:
        yield server


def make(server: ScriptedTGIServer, **options: Any) -> TGIModel:
    timeout = options.pop("timeout_seconds", 5.0)
    params = options.pop("params", GenerationParams())
    return TGIModel(
        ProviderSettings(
            "hf_tgi",
            "tgi-model",
            endpoint=server.url,
            options=options,
            timeout_seconds=timeout,
            params=params,
        )
    )


async def test_streams_tokens_skipping_special_ones(tgi: ScriptedTGIServer) -> None:
    tgi.push(Reply("The quick brown fox.", tokens_out=6))
    model = make(tgi)

    events = [e async for e in model.stream(HELLO)]

    deltas, final = events[:-1], events[-1]
    assert all(isinstance(e, TextDelta) for e in deltas) and len(deltas) >= 4
    assert isinstance(final, ModelResponse)
    assert "".join(d.text for d in deltas) == final.content == "The quick brown fox."
    assert "</s>" not in final.content  # the EOS token is special
    assert final.finish_reason == "stop"  # eos_token in OpenAI's vocabulary
    assert tgi.request_paths == ["/generate_stream"]
    await model.aclose()


async def test_the_models_own_template_is_applied_by_the_server(
    tgi: ScriptedTGIServer, answer: Answer
) -> None:
    tgi.push(Reply("ok", tokens_out=1))
    model = make(tgi)

    response = await answer(model, HELLO)

    assert tgi.tokenize_requests[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert tgi.requests[0]["inputs"] == "[system] Be brief.\n[user] hi\n"
    # Prompt tokens come from /chat_tokenize (exact), completion tokens from details.
    assert (response.usage.tokens_in, response.usage.tokens_out) == (5, 1)
    assert response.usage.estimated is False
    assert "<|im_end|>" not in tgi.requests[0]["parameters"].get("stop", [])
    await model.aclose()


async def test_falls_back_to_chatml_once_when_the_server_has_no_template(answer: Answer) -> None:
    with ScriptedTGIServer(chat_template=None) as old_tgi:
        old_tgi.push(Reply("one"), Reply("two"))
        model = make(old_tgi)

        first = await answer(model, HELLO)
        await answer(model, HELLO)

        assert len(old_tgi.tokenize_requests) == 1  # asked once, then remembered
        assert old_tgi.requests[0]["inputs"] == render_chatml(HELLO)
        assert old_tgi.requests[0]["parameters"]["stop"] == ["<|im_end|>"]
        assert first.usage.tokens_in > 0 and first.usage.estimated is True
        await model.aclose()


async def test_server_template_mode_refuses_a_server_without_one(answer: Answer) -> None:
    with ScriptedTGIServer(chat_template=None) as old_tgi:
        model = make(old_tgi, chat_template="server")
        with pytest.raises(ProviderError) as caught:
            await answer(model, HELLO)
        assert caught.value.status_code == 404 and not caught.value.retryable
        await model.aclose()


async def test_simple_template_mode_skips_the_round_trip(
    tgi: ScriptedTGIServer, answer: Answer
) -> None:
    tgi.push(Reply("ok"))
    model = make(tgi, chat_template="simple")

    await answer(model, [*HELLO, Message.tool("42", tool_call_id="c1", name="calc")])

    assert tgi.tokenize_requests == []
    assert tgi.requests[0]["inputs"] == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>user\nObservation: 42<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    await model.aclose()


async def test_parameters_follow_tgis_names_and_limits(
    tgi: ScriptedTGIServer, answer: Answer
) -> None:
    tgi.push(Reply("a"), Reply("b"))
    model = make(tgi, params=GenerationParams(max_tokens=32, top_p=1.0, seed=7))

    await answer(model, HELLO, params=GenerationParams(temperature=0.0, stop=["END"]))
    await answer(
        model,
        HELLO,
        params=GenerationParams(
            temperature=0.7, top_p=0.9, response_format={"type": "json_object"}
        ),
    )

    greedy, sampled = (r["parameters"] for r in tgi.requests)
    assert greedy == {
        "details": True,
        "max_new_tokens": 32,
        "do_sample": False,  # TGI refuses temperature 0
        "stop": ["END"],
        "seed": 7,  # top_p 1.0 is dropped: TGI requires top_p < 1
    }
    assert sampled["temperature"] == 0.7 and sampled["do_sample"] is True
    assert sampled["top_p"] == 0.9
    assert sampled["grammar"] == {"type": "json", "value": {"type": "object"}}
    await model.aclose()


async def test_usage_is_estimated_when_details_are_missing(
    tgi: ScriptedTGIServer, answer: Answer
) -> None:
    tgi.push(Reply("x" * 40, include_usage=False))
    model = make(tgi, chat_template="simple")

    response = await answer(model, [Message.user("y" * 80)])

    assert response.usage.estimated is True
    assert response.usage.tokens_out == 10 and response.usage.tokens_in >= 20
    await model.aclose()


async def test_finish_reason_length(tgi: ScriptedTGIServer, answer: Answer) -> None:
    tgi.push(Reply("truncated", finish_reason="length"))
    model = make(tgi)
    assert (await answer(model, HELLO)).finish_reason == "length"
    await model.aclose()


async def test_a_non_streamed_generate_answer_is_accepted(tgi: ScriptedTGIServer) -> None:
    tgi.push(Reply("all at once", stream=False, tokens_out=3))
    model = make(tgi)

    events = [e async for e in model.stream(HELLO)]

    assert events[0] == TextDelta("all at once")
    assert events[-1].usage.tokens_out == 3
    await model.aclose()


@pytest.mark.parametrize("status", [424, 429, 500, 503])
async def test_server_failures_are_retryable(
    tgi: ScriptedTGIServer, status: int, answer: Answer
) -> None:
    tgi.push(Reply("shard failed", status=status))
    model = make(tgi)

    with pytest.raises(ProviderError) as caught:
        await answer(model, HELLO)

    assert caught.value.retryable is True and caught.value.status_code == status
    assert "shard failed" in caught.value.message
    await model.aclose()


async def test_validation_errors_are_not_retryable(tgi: ScriptedTGIServer, answer: Answer) -> None:
    tgi.push(Reply("`inputs` tokens + `max_new_tokens` must be <= 2048", status=422))
    model = make(tgi)

    with pytest.raises(ProviderError) as caught:
        await answer(model, HELLO)

    assert caught.value.retryable is False and "max_new_tokens" in caught.value.message
    await model.aclose()


async def test_error_event_inside_the_stream(tgi: ScriptedTGIServer, answer: Answer) -> None:
    tgi.push(Reply("partial", stream_error="CUDA out of memory"))
    model = make(tgi)

    with pytest.raises(ProviderError) as caught:
        await answer(model, HELLO)

    assert caught.value.retryable is True and "CUDA out of memory" in caught.value.message
    await model.aclose()


@pytest.mark.parametrize("cut_after", [0, 2])
async def test_cut_stream_is_retryable(
    tgi: ScriptedTGIServer, cut_after: int, answer: Answer
) -> None:
    tgi.push(Reply("a long answer that never ends", cut_after_chunks=cut_after))
    model = make(tgi)

    with pytest.raises(ProviderError) as caught:
        await answer(model, HELLO)

    assert caught.value.retryable is True
    await model.aclose()


async def test_stall_raises_provider_timeout(tgi: ScriptedTGIServer) -> None:
    tgi.push(Reply("slow words arriving", chunk_delay=2.0))
    model = make(tgi, timeout_seconds=0.3)

    with pytest.raises(ProviderTimeout):
        await streamed(model, HELLO)
    await model.aclose()


async def test_slow_server_raises_provider_timeout(tgi: ScriptedTGIServer, answer: Answer) -> None:
    tgi.push(Reply("too late", delay=2.0))
    model = make(tgi, timeout_seconds=0.3)

    with pytest.raises(ProviderTimeout) as caught:
        await answer(model, HELLO)

    assert caught.value.retryable is True
    await model.aclose()


async def test_health_and_options(tgi: ScriptedTGIServer, closed_port_url: str) -> None:
    model = make(tgi)
    assert await model.health() is True
    tgi.healthy = False
    assert await model.health() is False
    await model.aclose()

    down = TGIModel(ProviderSettings("hf_tgi", "m", endpoint=closed_port_url))
    assert await down.health() is False
    with pytest.raises(ConfigurationError, match="api='chat'"):
        make(tgi, api="chat")
    with pytest.raises(ConfigurationError, match="chat_template"):
        make(tgi, chat_template="jinja")


async def test_messages_api_on_request_carries_tools(
    tgi: ScriptedTGIServer, answer: Answer
) -> None:
    tool = ToolDefinition(name="add", parameters={"type": "object", "properties": {}})
    tgi.push(Reply(tool_calls=[("add", {"a": 1})]))
    model = make(tgi, api="messages")

    response = await answer(model, HELLO, tools=[tool])

    assert model.supports_native_tools and model.capabilities.tools
    assert tgi.request_paths == ["/v1/chat/completions"]
    assert response.tool_calls[0].arguments == {"a": 1}
    await model.aclose()
