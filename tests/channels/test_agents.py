"""Agents routes: list, describe, run (sync and async), stream (SSE); runs: read and cancel."""

from __future__ import annotations

from astromesh.runs.state import RunStatus
from tests.channels.conftest import parse_sse, wait_for
from tests.support.agents import primary, python_tool, write_agent
from tests.support.model_servers import Reply


async def test_list_and_describe(agents_dir, make_app, client_for):
    write_agent(agents_dir, "helper", tools=[python_tool("add", "add")])
    write_agent(agents_dir, "other")
    client = client_for(make_app())

    listing = (await client.get("/v1/agents")).json()["agents"]
    assert [a["name"] for a in listing] == ["helper", "other"]
    first = listing[0]
    assert (first["version"], first["namespace"], first["pattern"]) == ("1.0.0", "tests", "react")
    assert first["description"] == "A test agent" and first["tools"] == ["add"]
    assert (first["status"], first["origin"]) == ("deployed", "file")

    config = (await client.get("/v1/agents/helper")).json()
    assert config["apiVersion"] == "astromesh/v1" and config["kind"] == "Agent"
    assert config["spec"]["tools"][0]["handler"] == "tests.support.tools:add"

    missing = await client.get("/v1/agents/helpr")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": "not_found",
        "message": "agent 'helpr' not found; did you mean 'helper'? (known agents: helper, other)",
    }


async def test_run_sync_returns_upstreams_fields_and_ours(
    agents_dir, make_app, client_for, openai_server
):
    write_agent(agents_dir, model=primary(openai_server.url), tools=[python_tool("add", "add")])
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 2, "b": 3})], tokens_in=20, tokens_out=5),
        Reply("The sum is 5.", tokens_in=30, tokens_out=6),
    )
    client = client_for(make_app())

    response = await client.post(
        "/v1/agents/helper/run", json={"query": "2 + 3?", "session_id": "s1", "context": {"k": 1}}
    )

    assert response.status_code == 200
    body = response.json()
    assert {"answer", "steps", "usage", "trace", "data", "run_id", "status"} <= set(body)
    assert body["answer"] == "The sum is 5." and body["status"] == "succeeded"
    assert [s["type"] for s in body["steps"]] == [
        "prepare",
        "model_call",
        "tool_call",
        "model_call",
    ]
    usage = body["usage"]
    assert (usage["tokens_in"], usage["tokens_out"], usage["model"]) == (50, 11, "scripted")
    [line] = usage["by_model"]
    assert {"provider", "model", "role", "calls", "tokens_in", "tokens_out", "cost"} <= set(line)
    assert line["calls"] == 2

    stored = (await client.get(f"/v1/runs/{body['run_id']}")).json()
    assert stored["answer"] == body["answer"] and stored["agent"] == "helper"
    assert stored["query"] == "2 + 3?" and stored["session_id"] == "s1"


async def test_a_failed_run_is_reported_in_the_body(
    agents_dir, make_app, client_for, closed_port_url
):
    write_agent(agents_dir, model=primary(closed_port_url + "/v1"))
    client = client_for(make_app())
    body = (await client.post("/v1/agents/helper/run", json={"query": "hi"})).json()
    assert body["status"] == "failed" and "connect" in body["error"].lower()


async def test_async_run_answers_202_then_completes(
    agents_dir, make_app, client_for, openai_server
):
    write_agent(agents_dir, model=primary(openai_server.url))
    openai_server.push(Reply("later", delay=0.2), Reply("flag"))
    client = client_for(make_app())

    accepted = await client.post("/v1/agents/helper/run?mode=async", json={"query": "q"})
    assert accepted.status_code == 202
    run_id = accepted.json()["run_id"]
    assert accepted.json() == {
        "run_id": run_id,
        "status": "running",
        "agent": "helper",
        "session_id": "default",
    }

    async def finished():
        body = (await client.get(f"/v1/runs/{run_id}")).json()
        return body if body["status"] != "running" else None

    body = await wait_for(finished)
    assert (body["status"], body["answer"]) == ("succeeded", "later")

    flag = await client.post("/v1/agents/helper/run", json={"query": "q", "async": True})
    assert flag.status_code == 202


async def test_cancel_stops_the_loop_before_its_next_tool_calls(
    agents_dir, make_app, client_for, openai_server
):
    """Cancelled during the first model call: that call's tool runs, the checkpoint after it
    loses to the cancel while the second model call is made (written behind it), and the
    run stops before the second call's tool."""
    write_agent(agents_dir, model=primary(openai_server.url), tools=[python_tool("add", "add")])
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 1, "b": 1})], delay=0.5),
        Reply(tool_calls=[("add", {"a": 2, "b": 2})]),
        Reply("never asked"),
    )
    client = client_for(make_app())
    run_id = (
        await client.post("/v1/agents/helper/run", json={"query": "q", "async": True})
    ).json()["run_id"]

    async def model_called():
        return len(openai_server.requests) == 1

    await wait_for(model_called)  # cancel during the step, not before it starts
    cancelled = await client.post(f"/v1/runs/{run_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json() == {"run_id": run_id, "status": "cancelled"}

    async def settled():
        body = (await client.get(f"/v1/runs/{run_id}")).json()
        return body if any(s["type"] == "stopped" for s in body["steps"]) else None

    body = await wait_for(settled)
    assert body["status"] == RunStatus.CANCELLED.value
    assert len(openai_server.requests) == 2  # the call made while the checkpoint was written
    assert [s["type"] for s in body["steps"]].count("tool_call") == 1  # not its tool
    again = await client.post(f"/v1/runs/{run_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


async def test_unknown_run_is_404(make_app, client_for):
    response = await client_for(make_app()).get("/v1/runs/run_nope")
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "not_found", "message": "run 'run_nope' not found"}


async def test_stream_sends_the_websocket_frames_as_sse(
    agents_dir, make_app, client_for, openai_server
):
    write_agent(agents_dir, model=primary(openai_server.url), tools=[python_tool("add", "add")])
    openai_server.push(Reply(tool_calls=[("add", {"a": 2, "b": 2})]), Reply("Four, as computed."))
    client = client_for(make_app())

    response = await client.post(
        "/v1/agents/helper/stream", json={"query": "2+2", "session_id": "sse"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = parse_sse(response.text)
    types = [event for event, _ in frames]
    assert types[0] == "status" and types[-1] == "done"
    assert types.index("tool_call") < types.index("tool_result") < types.index("token")
    assert all(data["type"] == event for event, data in frames)
    assert frames[0][1] == {
        "type": "status",
        "status": "processing",
        "agent": "helper",
        "run_id": response.headers["x-run-id"],
    }
    tokens = "".join(data["content"] for event, data in frames if event == "token")
    assert tokens == "Four, as computed."
    done = frames[-1][1]
    assert (done["answer"], done["session_id"]) == ("Four, as computed.", "sse")
    assert done["usage"]["tokens_out"] == 14


async def test_paused_agents_refuse_runs_until_resumed(
    agents_dir, make_app, client_for, openai_server
):
    write_agent(agents_dir, model=primary(openai_server.url))
    openai_server.push(Reply("back"))
    client = client_for(make_app())

    assert (await client.post("/v1/agents/helper/pause")).json() == {
        "agent": "helper",
        "status": "paused",
    }
    assert (await client.get("/v1/agents")).json()["agents"][0]["status"] == "paused"
    refused = await client.post("/v1/agents/helper/run", json={"query": "q"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "agent_paused"

    assert (await client.post("/v1/agents/helper/resume")).json() == {
        "agent": "helper",
        "status": "deployed",
    }
    assert (await client.post("/v1/agents/helper/deploy")).json()["status"] == "deployed"
    assert (await client.post("/v1/agents/helper/run", json={"query": "q"})).json()[
        "answer"
    ] == "back"
