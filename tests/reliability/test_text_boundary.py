"""Text in, text out, always valid: invalid text is refused where the sender can be told and
repaired where nobody can, and never becomes a 500 later.

Requests carry lone surrogates, NUL and bytes that are not UTF-8 in every place
a caller controls (JSON bodies, run ``context``, posted agent documents in JSON and YAML,
query strings, paths, WebSocket messages): each is ``422 invalid_text`` naming the field.
Text nobody can be told about (a model's answer, a tool's result, a document stored before
this rule) is repaired to U+FFFD, and the run or agent it belongs to is stored, listed and
read back as usual, on SQLite (where the original report's ``PydanticSerializationError``
came from).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from astromesh.channels.catalog import REQUEST_SOURCE
from astromesh.text_boundary import (
    PATTERN,
    REPLACEMENT,
    InvalidText,
    find_invalid,
    first_invalid,
    json_body_issues,
    query_issues,
    repair,
    repair_value,
)
from tests.support.agents import agent_document, primary, python_tool, write_agent
from tests.support.model_servers import Reply

INVALID = ["\ud800", "\udbff", "\udc00", "\udfff", "\x00"]
RUN = "/v1/agents/helper/run"


def raw_json(data: object) -> bytes:
    """JSON as a client that escapes everything writes it (lone surrogates included)."""
    return json.dumps(data).encode()


# -- the rule ------------------------------------------------------------------------------


@pytest.mark.parametrize("char", INVALID)
def test_each_kind_of_invalid_code_point_is_found_and_repaired(char):
    text = f"ab{char}cd"
    assert first_invalid(text) == 2
    assert repair(text) == f"ab{REPLACEMENT}cd"


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00")))
def test_encodable_text_without_nul_is_valid_and_untouched(text):
    assert first_invalid(text) is None
    assert repair(text) is text


@given(st.recursive(st.text(), lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids)))
def test_repaired_data_is_always_encodable(value):
    repaired = repair_value(value)
    json.dumps(repaired, ensure_ascii=False).encode("utf-8")
    assert find_invalid(repaired) == []


_ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()))  # surrogates and NUL too


@given(
    st.recursive(
        _ANY_TEXT | st.integers(),
        lambda kids: st.lists(kids) | st.tuples(kids) | st.dictionaries(_ANY_TEXT, kids),
    )
)
def test_a_value_comes_back_itself_exactly_when_nothing_in_it_is_invalid(value):
    """repair_value's quick check (no paths built) agrees with find_invalid, keys included."""
    assert (repair_value(value) is value) == (find_invalid(value, limit=1) == [])


@pytest.mark.parametrize("char", ["\ufffe", "\uffff", "\ufdd0", "\U0010ffff", "\U0001f600"])
def test_noncharacters_and_other_scalar_values_are_valid_text(char):
    assert first_invalid(f"a{char}") is None
    assert re.fullmatch(PATTERN, f"a{char}")
    assert not re.fullmatch(PATTERN, "a\x00") and not re.fullmatch(PATTERN, "a\ud800")


def test_issues_name_the_path_the_way_422_bodies_name_fields():
    issues = find_invalid({"context": {"notes": ["ok", "bad\ud800"], "k\x00": 1}})
    assert [i.field for i in issues] == ["context.notes[1]", "context.k\ufffd (key)"]
    assert "lone surrogate U+D800 at position 3" in issues[0].message


def test_a_deeply_nested_value_is_walked_without_recursion():
    value: object = "\ud800"
    for _ in range(50_000):
        value = [value]
    assert len(find_invalid(value)) == 1
    repaired = repair_value(value)
    for _ in range(50_000):
        repaired = repaired[0]
    assert repaired == REPLACEMENT


def test_body_and_query_checks_read_bytes_as_they_arrive():
    assert json_body_issues(b'{"q": "plain", "n": 1}') == []
    assert json_body_issues(raw_json({"q": "\U0001f600 fine"})) == []
    [escaped] = json_body_issues(b'{"q": "a\\u0000"}')
    assert escaped.field == "q" and "NUL" in escaped.message
    [byte] = json_body_issues(b'{"q": "a\xffb"}')
    assert byte.field == "q" and "0xFF" in byte.message
    names = [i.field for i in query_issues(b"limit=5&tenant=%00&x=%ED%A0%80&ok=%C3%A9")]
    assert names == ["query.tenant", "query.x"]


# -- refused at the API ----------------------------------------------------------------------


@pytest.fixture
def helper(agents_dir, openai_server):
    write_agent(agents_dir, model=primary(openai_server.url))
    return openai_server


def assert_invalid_text(response, field: str) -> dict:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_text"
    assert field in [f["field"] for f in error["fields"]], error
    return error


@pytest.mark.parametrize("char", INVALID)
async def test_a_run_context_or_query_with_invalid_text_is_422_naming_the_field(
    helper, make_app, client_for, char
):
    client = client_for(make_app())
    body = {"query": "hi", "context": {"user": {"name": f"x{char}"}}}
    response = await client.post(RUN, content=raw_json(body))
    assert_invalid_text(response, "context.user.name")
    response = await client.post(RUN, content=raw_json({"query": f"hi{char}"}))
    assert_invalid_text(response, "query")
    assert helper.requests == []  # nothing ran


async def test_bytes_that_are_not_utf8_are_422_at_their_field(helper, make_app, client_for):
    client = client_for(make_app())
    response = await client.post(
        RUN, content=b'{"query": "caf\xe9"}', headers={"content-type": "application/json"}
    )
    error = assert_invalid_text(response, "query")
    assert "0xE9" in error["message"]


async def test_query_strings_and_paths_are_checked_before_any_route(helper, make_app, client_for):
    client = client_for(make_app())
    assert_invalid_text(await client.get("/v1/agents?tenant=%00"), "query.tenant")
    assert_invalid_text(await client.get("/v1/agents/helper?tenant=%ED%A0%80"), "query.tenant")
    assert_invalid_text(await client.get("/v1/runs/run_%00"), "path")
    assert_invalid_text(await client.get("/v1/memory/helper/history/s%FF"), "path")


@pytest.mark.parametrize(
    ("content_type", "text", "field", "line"),
    [
        (
            "application/json",
            json.dumps(agent_document("odd", identity={"description": "a\ud800"})),
            "spec.identity.description",
            None,
        ),
        (
            "application/yaml",
            "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {name: odd}\nspec:\n"
            '  identity: {description: "a\\uD800"}\n',
            "spec.identity.description",
            5,
        ),
        (
            "application/yaml",
            "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {name: odd}\nspec:\n"
            '  identity: {"k\\0": x}\n',
            'spec.identity["k\ufffd"]',  # config paths quote keys that are not plain
            5,
        ),
    ],
    ids=["json-escape", "yaml-escape", "yaml-key-nul"],
)
async def test_a_posted_agent_document_with_invalid_text_is_422_at_its_field_and_line(
    make_app, client_for, content_type, text, field, line
):
    client = client_for(make_app())
    response = await client.post(
        "/v1/agents", content=text.encode("utf-8"), headers={"content-type": content_type}
    )
    error = assert_invalid_text(response, field)
    entry = next(f for f in error["fields"] if f["field"] == field)
    assert entry.get("line") == line
    assert (await client.get("/v1/agents/odd")).status_code == 404


async def test_a_yaml_document_that_is_not_utf8_is_422_with_its_line(make_app, client_for):
    client = client_for(make_app())
    text = b"apiVersion: astromesh/v1\nkind: Agent\nmetadata: {name: caf\xe9}\n"
    response = await client.post(
        "/v1/agents", content=text, headers={"content-type": "application/yaml"}
    )
    error = assert_invalid_text(response, "")
    assert error["fields"][0]["line"] == 3


async def test_a_websocket_message_with_invalid_text_gets_an_invalid_text_frame(helper, make_app):
    from starlette.testclient import TestClient

    app = make_app()
    with TestClient(app) as client, client.websocket_connect("/v1/ws/agent/helper") as socket:
        socket.send_text(json.dumps({"query": "hi", "context": {"a": "\udfff"}}))
        frame = socket.receive_json()
    assert frame["code"] == "invalid_text" and "context.a" in frame["message"]
    assert helper.requests == []


@pytest.mark.parametrize(
    "url",
    ["/v1/ws/agent/helper?session_id=%00", "/v1/ws/agent/help%ED%A0%80er", "/v1/ws/agent/h?x=%FF"],
)
async def test_a_websocket_handshake_with_invalid_text_is_refused_with_a_frame(
    helper, make_app, url
):
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    with TestClient(make_app()) as client, client.websocket_connect(url) as socket:
        frame = socket.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
    assert frame["code"] == "invalid_text"
    assert closed.value.code == 4422
    assert helper.requests == []


def test_a_file_agent_with_invalid_text_is_skipped_with_the_reason(agents_dir, openai_server):
    from astromesh.config import load_path

    doc = agent_document("odd", model=primary(openai_server.url))
    doc["spec"]["identity"]["description"] = "\ud800"
    (agents_dir / "odd.agent.yaml").write_text(
        yaml.safe_dump(doc).replace("\\uD800", "\\uD800"), encoding="utf-8"
    )
    result = load_path(agents_dir)
    [issue] = result.errors
    assert issue.field == "spec.identity.description" and "lone surrogate" in issue.message
    assert result.agents == {}
    assert REQUEST_SOURCE not in issue.file


# -- repaired where nobody can be told ---------------------------------------------------------


@pytest.fixture
def sqlite_app(make_app, tmp_path: Path):
    def make():
        return make_app(
            env={
                "ASTROMESH_STATE_BACKEND": "sqlite",
                "ASTROMESH_STATE_PATH": str(tmp_path / "state.db"),
            }
        )

    return make


async def test_a_models_invalid_answer_is_repaired_stored_and_read_back(
    helper, sqlite_app, client_for
):
    client = client_for(sqlite_app())
    helper.push(Reply("partly \ud800 broken \x00 answer"))

    response = await client.post(RUN, json={"query": "hi", "session_id": "s1"})

    assert response.status_code == 200, response.text
    answer = response.json()["answer"]
    assert answer == f"partly {REPLACEMENT} broken {REPLACEMENT} answer"
    stored = await client.get(f"/v1/runs/{response.json()['run_id']}")
    assert stored.status_code == 200 and stored.json()["answer"] == answer
    history = await client.get("/v1/memory/helper/history/s1")
    assert history.status_code == 200
    assert history.json()["history"][-1]["content"] == answer


async def test_a_tools_invalid_result_is_repaired_and_the_run_still_answers(
    agents_dir, openai_server, sqlite_app, client_for
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=[python_tool("broken_text", "broken_text")],
    )
    openai_server.push(Reply(tool_calls=[("broken_text", {"topic": "x"})]), Reply("done"))
    client = client_for(sqlite_app())

    response = await client.post(RUN, json={"query": "hi"})

    assert response.status_code == 200, response.text
    assert response.json()["answer"] == "done"
    seen = json.dumps(openai_server.requests[1]["messages"][-1])
    assert "before \\ufffd middle \\ufffd after" in seen  # both, as JSON escapes
    stored = await client.get(f"/v1/runs/{response.json()['run_id']}")
    assert stored.status_code == 200


async def test_a_stored_document_with_invalid_text_lists_and_runs_repaired(
    helper, sqlite_app, client_for
):
    app = sqlite_app()
    client = client_for(app)
    document = agent_document("legacy", model=primary(helper.url))
    document["spec"]["identity"]["description"] = "stored \ud800 before the rule"
    registry = (await app.state.services.control()).registry
    await registry.create("legacy", json.dumps(document), tenant="default")
    helper.push(Reply("still answering"))

    listed = await client.get("/v1/agents")
    described = await client.get("/v1/agents/legacy")
    ran = await client.post("/v1/agents/legacy/run", json={"query": "hi"})

    assert listed.status_code == 200, listed.text
    [legacy] = [a for a in listed.json()["agents"] if a["name"] == "legacy"]
    assert legacy["description"] == f"stored {REPLACEMENT} before the rule"
    assert described.status_code == 200
    assert ran.status_code == 200 and ran.json()["answer"] == "still answering"


def test_a_run_assigned_invalid_text_after_it_was_built_still_serialises():
    from astromesh.runs.state import RunState

    run = RunState(agent="helper", query="q")
    run.answer = "late \ud800"
    run.data = {"k\udfff": ["\x00"]}
    restored = RunState.model_validate_json(run.model_dump_json())
    assert restored.answer == f"late {REPLACEMENT}"
    assert restored.data == {f"k{REPLACEMENT}": [REPLACEMENT]}


def test_invalid_text_is_a_422_error_with_its_fields():
    error = InvalidText(find_invalid({"a": "\ud800"}))
    assert (error.status, error.code) == (422, "invalid_text")
    assert error.message.startswith("a: invalid text: lone surrogate U+D800")


async def test_an_emoji_escaped_as_a_surrogate_pair_is_one_character_not_invalid_text(
    helper, make_app, client_for
):
    client = client_for(make_app())
    document = agent_document("smiley", model=primary(helper.url))
    document["spec"]["identity"]["description"] = "happy \U0001f600"
    body = json.dumps(document)  # ensure_ascii: the emoji is written "\ud83d\ude00"
    assert "\\ud83d\\ude00" in body

    registered = await client.post("/v1/agents", content=body.encode())
    described = await client.get("/v1/agents/smiley")

    assert registered.status_code == 201, registered.text
    assert described.json()["spec"]["identity"]["description"] == "happy \U0001f600"


def test_a_tool_named_and_described_with_invalid_text_lists_repaired():
    """An MCP server names and describes its own tools; what the model and GET /v1/tools
    are told is valid text."""
    from astromesh.tools.python import PythonTool
    from tests.support.tools import add

    tool = PythonTool(
        "add\ud800",
        add,
        description="adds \x00 numbers",
        parameters={"type": "object", "properties": {"a\udfff": {"type": "integer"}}},
    )

    assert (tool.name, tool.description) == (f"add{REPLACEMENT}", f"adds {REPLACEMENT} numbers")
    assert list(tool.parameters["properties"]) == [f"a{REPLACEMENT}"]
    json.loads(tool.definition.model_dump_json())
