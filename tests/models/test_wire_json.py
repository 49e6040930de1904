"""Request bodies encoded with the messages and tools already sent reused (wire_json).

The body must be what encoding the whole request dict gives, whatever was cached before, and
a message changed since it was cached (a redaction replaces its content) must go out changed.
"""

from __future__ import annotations

import json
from typing import Any

from astromesh.models import GenerationParams, Message, ProviderSettings, ToolDefinition
from astromesh.models.openai_compat import OpenAICompatModel, _wire_message
from astromesh.models.types import ToolCall
from astromesh.models.wire_json import LARGEST_CACHED, WireCache, dumps
from tests.support.model_servers import Reply, ScriptedOllamaServer, ScriptedOpenAIServer

ADD = ToolDefinition(
    name="add",
    description="Add två tal ✓",
    parameters={"type": "object", "properties": {"a": {"type": "integer"}}},
)


def conversation(turns: int) -> list[Message]:
    messages = [Message.system("Du är hjälpsam ✓"), Message.user('go \u2028 "quoted"')]
    for i in range(turns):
        call = ToolCall(id=f"call_{i}", name="add", arguments={"a": i, "note": "é\n"})
        messages.append(Message.assistant("", [call]))
        messages.append(Message.tool(f"{i} ✓", tool_call_id=call.id, name="add"))
    raw = ToolCall(id="raw", name="add", arguments={"_raw": "{not json"})
    messages.append(Message.assistant("thinking", [raw]))
    return messages


def openai(url: str = "http://127.0.0.1:9/v1", **options: Any) -> OpenAICompatModel:
    return OpenAICompatModel(ProviderSettings("openai_compat", "m", endpoint=url, options=options))


def test_the_body_is_the_encoded_request_dict_byte_for_byte() -> None:
    model = openai()
    params = GenerationParams(temperature=0.5, stop=["END"], seed=3)
    messages = conversation(3)

    for stream in (True, False, True):  # the second and third calls reuse the cache
        encoded = model._encoded_body(messages, [ADD], params, stream=stream)
        assert encoded == dumps(model._request_body(messages, [ADD], params, stream=stream))
    messages.append(Message.user("one more"))
    encoded = model._encoded_body(messages, [], params, stream=False)
    assert encoded == dumps(model._request_body(messages, [], params, stream=False))


def test_a_parameter_naming_a_field_replaces_it_as_before() -> None:
    model = openai()
    params = GenerationParams(model="other-model", temperature=0.1)

    encoded = model._encoded_body(conversation(1), [ADD], params, stream=True)

    assert json.loads(encoded)["model"] == "other-model"
    assert encoded == dumps(model._request_body(conversation(1), [ADD], params, stream=True))


async def test_a_message_changed_after_it_was_sent_is_sent_changed(
    openai_server: ScriptedOpenAIServer,
) -> None:
    openai_server.push(Reply("one"), Reply("two"))
    model = openai(openai_server.url)
    messages = [Message.system("s"), Message.user("mail boss@example.com")]

    await model.complete(messages)
    messages[1].content = messages[1].content.replace("boss@example.com", "[EMAIL]")
    messages[1].name = "someone"
    await model.complete(messages)

    first, second = (request["messages"][1] for request in openai_server.requests)
    assert first == {"role": "user", "content": "mail boss@example.com"}
    assert second == {"role": "user", "content": "mail [EMAIL]", "name": "someone"}
    await model.aclose()


async def test_ollama_sends_the_same_conversation_with_the_cache(
    ollama_server: ScriptedOllamaServer,
) -> None:
    from astromesh.models.ollama import OllamaModel

    ollama_server.push(Reply("one"), Reply("two"))
    model = OllamaModel(ProviderSettings("ollama", "m", endpoint=ollama_server.url))
    messages = conversation(2)

    await model.complete(messages, tools=[ADD])
    messages.append(Message.user("again"))
    await model.complete(messages, tools=[ADD])

    first, second = ollama_server.requests
    assert second["messages"][:-1] == first["messages"]
    assert second["messages"][-1] == {"role": "user", "content": "again"}
    assert second["tools"] == first["tools"]
    assert first["messages"][2]["tool_calls"][0]["function"]["arguments"] == {"a": 0, "note": "é\n"}
    await model.aclose()


def test_the_cache_holds_a_bounded_amount() -> None:
    cache = WireCache(_wire_message, capacity=10_000)
    big = Message.user("x" * (LARGEST_CACHED + 1))
    many = [Message.user(f"message number {i}") for i in range(2_000)]

    for _ in range(2):
        encoded = cache.messages([big, *many])
        assert json.loads(encoded) == [_wire_message(m) for m in [big, *many]]

    assert cache._held <= 10_000
    assert id(big) not in cache._entries
    assert sum(len(entry[2]) for entry in cache._entries.values()) == cache._held


def test_the_cache_holds_a_bounded_number_of_messages() -> None:
    cache = WireCache(_wire_message, entries=100)
    many = [Message.user(f"{i}") for i in range(1_000)]

    encoded = cache.messages(many)

    assert json.loads(encoded) == [_wire_message(m) for m in many]
    assert len(cache._entries) == 100
    assert next(reversed(cache._entries)) == id(many[-1])  # the most recently sent stay
