"""functions/ws_connect and functions/ws_message against moto, with every sample event.

The connection registry is the test's Redis slice, the key store and runs a SQLite file
both functions share (as two Lambda functions share the deployment's stores). Frames are
read back from moto's Management API backend, which records every ``post_to_connection``;
a client that has left is a ``GoneException`` (410) from botocore's Stubber.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis
from botocore.stub import Stubber

from astromesh.auth import key_store_for
from astromesh.channels.aws import management
from astromesh.runs.state import RunStatus
from astromesh.stores.sqlite import SQLiteBackend
from tests.support.agents import primary, python_tool, write_agent
from tests.support.channel_lambdas import REGION, ChannelAWS
from tests.support.model_servers import Reply
from tests.support.stepfunctions import FakeLambdaContext, load_handler

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"
FUNCTIONS = REPO / "functions"
SAMPLE_KEY_ID = "sampleevents"
SAMPLE_SECRET = "c2FtcGxlLWV2ZW50cy1ub3QtYS1zZWNyZXQ"
CONNECTION = "L0SM9cOFvHcCIhw="
ENDPOINT = "https://abc123.execute-api.eu-west-1.amazonaws.com/dev"


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def message(body: Any, connection: str = CONNECTION) -> dict[str, Any]:
    event = sample("ws_message/run")
    event["requestContext"]["connectionId"] = connection
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


async def _seed_sample_key(path: Path) -> None:
    backend = SQLiteBackend(path)
    try:
        await key_store_for(backend).issue(
            "events", ["*"], label="sample events", key_id=SAMPLE_KEY_ID, secret=SAMPLE_SECRET
        )
    finally:
        await backend.close()


@pytest.fixture
def aws(tmp_path, monkeypatch, openai_server, redis_url, redis_prefix) -> Iterator[ChannelAWS]:
    write_agent(
        tmp_path / "agents",
        "assistant",
        model=primary(openai_server.url),
        tools=[python_tool("add", "add")],
    )
    state = tmp_path / "state.db"
    env = {
        "ASTROMESH_AGENTS_DIR": str(tmp_path / "agents"),
        "ASTROMESH_STATE_BACKEND": "sqlite",
        "ASTROMESH_STATE_PATH": str(state),
        "ASTROMESH_REDIS_URL": redis_url,
        "ASTROMESH_CHANNELS_REDIS_PREFIX": redis_prefix,
        "ASTROMESH_WS_FLUSH_MS": "100",
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ASTROMESH_AUTH", raising=False)
    monkeypatch.delenv("ASTROMESH_WS_CALLBACK_URL", raising=False)
    asyncio.run(_seed_sample_key(state))
    with ChannelAWS() as emulated:
        yield emulated


@pytest.fixture
def handlers(aws) -> Iterator[dict[str, ModuleType]]:
    loaded = {
        name: load_handler(FUNCTIONS / name / "handler.py", f"test_{name}_handler")
        for name in ("ws_connect", "ws_message")
    }
    yield loaded
    for module in loaded.values():
        module.worker.close()


def call(module: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    name = module.__name__.removeprefix("test_").removesuffix("_handler")
    return module.handler(event, FakeLambdaContext(function_name=f"astromesh-{name}"))


def connect(handlers) -> None:
    assert call(handlers["ws_connect"], sample("ws_connect/connect")) == {"statusCode": 200}


def registered(redis_url: str, prefix: str) -> dict[str, Any] | None:
    client = redis.Redis.from_url(redis_url)
    try:
        text = client.get(f"{prefix}:ws:{CONNECTION}")
        ttl = client.ttl(f"{prefix}:ws:{CONNECTION}")
    finally:
        client.close()
    return None if text is None else {**json.loads(text), "ttl": ttl}


def test_connect_registers_with_a_ttl_and_disconnect_unregisters(handlers, redis_url, redis_prefix):
    assert sorted(p.stem for p in (EVENTS / "ws_connect").glob("*.json")) == [
        "connect",
        "connect_bad_key",
        "disconnect",
    ]
    refused = call(handlers["ws_connect"], sample("ws_connect/connect_bad_key"))
    assert refused["statusCode"] == 401
    assert json.loads(refused["body"])["error"]["code"] == "unauthorized"
    assert registered(redis_url, redis_prefix) is None

    connect(handlers)
    record = registered(redis_url, redis_prefix)
    assert record is not None
    assert (record["tenant"], record["agents"], record["agent"]) == ("events", ["*"], "assistant")
    assert (record["session_id"], record["key_id"]) == ("sample-session", SAMPLE_KEY_ID)
    assert record["endpoint"] == ENDPOINT
    assert 7000 < record["ttl"] <= 7200

    assert call(handlers["ws_connect"], sample("ws_connect/disconnect")) == {"statusCode": 200}
    assert registered(redis_url, redis_prefix) is None


def test_connect_without_a_key_or_for_a_forbidden_agent_is_refused(handlers):
    event = sample("ws_connect/connect")
    event["queryStringParameters"] = {"agent": "assistant"}
    assert call(handlers["ws_connect"], event)["statusCode"] == 401
    event["queryStringParameters"] = {
        "api_key": f"am_{SAMPLE_KEY_ID}_{SAMPLE_SECRET}",
        "agent": "nobody",
    }
    answer = call(handlers["ws_connect"], event)
    assert answer["statusCode"] == 404 and "not found" in answer["body"]
    header = sample("ws_connect/connect")
    header["queryStringParameters"] = None
    header["headers"]["Authorization"] = f"Bearer am_{SAMPLE_KEY_ID}_{SAMPLE_SECRET}"
    assert call(handlers["ws_connect"], header)["statusCode"] == 200


def test_every_ws_message_sample(handlers, aws, openai_server):
    """run (handed off), cancel (before the job starts), bad JSON; then the job finds the
    run cancelled and says so; nothing reached the model."""
    assert sorted(p.stem for p in (EVENTS / "ws_message").glob("*.json")) == [
        "bad_json",
        "cancel",
        "run",
    ]
    connect(handlers)
    ws_message = handlers["ws_message"]

    started = call(ws_message, sample("ws_message/run"))
    assert started == {"statusCode": 202}
    cancelled = call(ws_message, sample("ws_message/cancel"))
    assert cancelled == {"statusCode": 200}
    bad = call(ws_message, sample("ws_message/bad_json"))
    assert bad["statusCode"] == 400
    [job] = aws.take_jobs()
    assert job["astromesh_job"]["kind"] == "ws_run"
    result = call(ws_message, job)

    frames = aws.frames(CONNECTION)
    assert [f["type"] for f in frames] == ["status", "error", "done"]
    assert frames[0]["status"] == "cancelling"
    assert frames[1]["code"] == "bad_request" and "not valid JSON" in frames[1]["message"]
    assert frames[2]["status"] == "cancelled" and frames[2]["session_id"] == "sample-session"
    assert result["status"] == "cancelled"
    assert openai_server.requests == []


def test_a_run_streams_batched_frames_through_the_management_api(handlers, aws, openai_server):
    connect(handlers)
    answer = "An agent runtime loads declared agents and runs them with tools and memory. " * 4
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 20, "b": 22})]),
        Reply(answer.strip(), chunk_delay=0.003),
    )

    assert call(handlers["ws_message"], sample("ws_message/run"))["statusCode"] == 202
    [job] = aws.take_jobs()
    result = call(handlers["ws_message"], job)

    frames = aws.frames(CONNECTION)
    types = [f["type"] for f in frames]
    assert types[0] == "status" and types[-1] == "done"
    assert types.index("tool_call") < types.index("tool_result") < types.index("token")
    tokens = [f["content"] for f in frames if f["type"] == "token"]
    token_events = -(-len(answer.strip()) // 4)  # the model streamed 4 characters at a time
    assert "".join(tokens) == answer.strip()
    assert 1 <= len(tokens) <= token_events // 8, (len(tokens), token_events)
    assert aws.posts[CONNECTION] == len(frames) == result["posted"]
    done = frames[-1]
    assert (done["status"], done["answer"], done["session_id"]) == (
        "succeeded",
        answer.strip(),
        "sample-session",
    )
    assert done["usage"]["tokens_in"] == 22


def test_a_second_run_while_one_runs_is_refused(handlers, aws, openai_server):
    connect(handlers)
    assert call(handlers["ws_message"], sample("ws_message/run"))["statusCode"] == 202
    second = call(handlers["ws_message"], sample("ws_message/run"))
    assert second["statusCode"] == 400
    assert "in progress" in aws.frames(CONNECTION)[-1]["message"]
    assert len(aws.take_jobs()) == 1


def test_messages_on_an_unregistered_connection_get_an_error_frame(handlers, aws):
    answer = call(handlers["ws_message"], message({"action": "run", "query": "hi"}))
    assert answer["statusCode"] == 401
    [frame] = aws.frames(CONNECTION)
    assert frame["type"] == "error" and frame["code"] == "unauthorized"


def test_unknown_actions_and_missing_queries_are_error_frames(handlers, aws):
    connect(handlers)
    assert call(handlers["ws_message"], message({"action": "dance"}))["statusCode"] == 400
    assert (
        call(handlers["ws_message"], message({"action": "run", "query": " "}))["statusCode"] == 400
    )
    assert call(handlers["ws_message"], message({"action": "cancel"}))["statusCode"] == 400
    assert call(handlers["ws_message"], message("[1, 2]"))["statusCode"] == 400
    messages = [f["message"] for f in aws.frames(CONNECTION)]
    assert "unknown action 'dance'" in messages[0]
    assert "'query' must be a non-empty string" in messages[1]
    assert "no run in progress" in messages[2]
    assert "must be a JSON object" in messages[3]


def test_a_gone_client_ends_delivery_and_cancels_the_run(handlers, aws, openai_server):
    connect(handlers)
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 1, "b": 2})]),
        Reply(tool_calls=[("add", {"a": 3, "b": 4})]),  # its tool is never run
        Reply("never asked for"),
    )
    call(handlers["ws_message"], sample("ws_message/run"))
    [job] = aws.take_jobs()

    client = management.management_client(ENDPOINT)
    with Stubber(client) as stubber:
        stubber.add_response("post_to_connection", {})  # status: processing
        stubber.add_client_error(  # tool_call: the client has left
            "post_to_connection", "GoneException", http_status_code=410
        )
        result = call(handlers["ws_message"], job)
        stubber.assert_no_pending_responses()

    assert result["gone"] is True and result["status"] == "cancelled"
    assert result["posted"] == 1
    # The cancel is found by the checkpoint written behind the next model call: that call
    # is made, and the loop stops before its tool.
    assert len(openai_server.requests) == 2

    async def stored_status() -> RunStatus:
        backend = SQLiteBackend(
            Path(handlers["ws_message"].worker.services.runtime.env["ASTROMESH_STATE_PATH"])
        )
        try:
            return (await backend.runs.get(job["astromesh_job"]["run_id"])).status
        finally:
            await backend.close()

    assert asyncio.run(stored_status()) is RunStatus.CANCELLED


def test_a_frame_over_32kb_is_split(handlers, aws, openai_server):
    connect(handlers)
    answer = "Long answer. " * 4000  # 52,000 characters
    openai_server.push(Reply(answer.strip()))
    call(handlers["ws_message"], sample("ws_message/run"))
    [job] = aws.take_jobs()
    call(handlers["ws_message"], job)

    assert aws.data(CONNECTION)  # frames arrived
    frames = aws.frames(CONNECTION)
    parts = [f for f in frames if f["type"] == "part"]
    assert parts and {p["of"] for p in parts} == {"done"}
    assert "".join(f["content"] for f in frames if f["type"] == "token") == answer.strip()
    rebuilt = json.loads("".join(p["data"] for p in sorted(parts, key=lambda p: p["index"])))
    assert rebuilt["answer"] == answer.strip()
    assert all(len(json.dumps(f).encode()) < 32 * 1024 for f in frames)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"query": "hi \\ud800"}', "invalid_text"),
        ('{"query": "hi", "context": {"a": "\\u0000"}}', "invalid_text"),
        ("[" * 50_000, "bad_request"),
    ],
    ids=["lone-surrogate", "nul-in-context", "nested-50k"],
)
def test_a_message_that_cannot_be_read_as_valid_text_is_an_error_frame(
    handlers, aws, openai_server, body, code
):
    connect(handlers)

    answered = call(handlers["ws_message"], message(body))

    [frame] = aws.frames(CONNECTION)
    assert (frame["type"], frame["code"]) == ("error", code)
    assert 400 <= answered["statusCode"] < 500
    assert aws.take_jobs() == [] and openai_server.requests == []


@pytest.mark.parametrize("param", ["agent", "session_id", "tenant"])
def test_a_connect_whose_query_is_not_valid_text_is_refused_422(handlers, param):
    event = sample("ws_connect/connect")
    event["queryStringParameters"][param] = "bad\x00"

    refused = call(handlers["ws_connect"], event)

    assert refused["statusCode"] == 422
    assert json.loads(refused["body"])["error"]["code"] == "invalid_text"
    assert f"query.{param}" in json.loads(refused["body"])["error"]["message"]
