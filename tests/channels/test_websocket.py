"""The local WebSocket against a real uvicorn server on 127.0.0.1 and a real client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest
import uvicorn
import websockets
from fastapi import FastAPI

from tests.channels.conftest import keys_of
from tests.support.agents import primary, python_tool, write_agent
from tests.support.model_servers import Reply


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[FastAPI], asyncio.Future[str]]]:
    """Serve an app with uvicorn on a free port in this event loop; yields ``ws://`` base URLs."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(app: FastAPI) -> str:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        servers.append((server, task))
        return f"ws://127.0.0.1:{port}"

    yield start
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def frames_until_done(socket) -> list[dict]:
    frames = []
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        frames.append(frame)
        if frame["type"] == "done":
            return frames


async def test_tokens_stream_over_the_socket(agents_dir, make_app, serve, openai_server):
    write_agent(agents_dir, model=primary(openai_server.url), tools=[python_tool("add", "add")])
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 20, "b": 22})]),
        Reply("The answer is 42.", chunk_delay=0.01),
        Reply("Again 42."),
    )
    base = await serve(make_app())

    async with websockets.connect(f"{base}/v1/ws/agent/helper?session_id=ws1") as socket:
        await socket.send(json.dumps({"query": "20 + 22?"}))
        frames = await frames_until_done(socket)
        await socket.send(json.dumps({"action": "run", "query": "again?", "session_id": "ws2"}))
        second = await frames_until_done(socket)

    types = [f["type"] for f in frames]
    assert frames[0] == {
        "type": "status",
        "status": "processing",
        "agent": "helper",
        "run_id": frames[-1]["run_id"],
    }
    assert types.index("tool_call") < types.index("tool_result") < types.index("token")
    tool_call = frames[types.index("tool_call")]
    assert (tool_call["name"], tool_call["arguments"]) == ("add", {"a": 20, "b": 22})
    tokens = [f["content"] for f in frames if f["type"] == "token"]
    assert len(tokens) > 1 and "".join(tokens) == "The answer is 42."
    done = frames[-1]
    assert (done["answer"], done["session_id"]) == ("The answer is 42.", "ws1")
    assert done["usage"]["tokens_in"] == 22
    assert second[-1]["session_id"] == "ws2" and second[-1]["answer"] == "Again 42."


async def test_cancel_and_message_errors_keep_the_connection(
    agents_dir, make_app, serve, openai_server
):
    write_agent(agents_dir, model=primary(openai_server.url), tools=[python_tool("add", "add")])
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 1, "b": 2})], delay=0.4),
        Reply(tool_calls=[("add", {"a": 3, "b": 4})]),
    )
    base = await serve(make_app())

    async with websockets.connect(f"{base}/v1/ws/agent/helper") as socket:
        await socket.send("{not json")
        assert json.loads(await socket.recv())["code"] == "bad_request"
        await socket.send(json.dumps({"action": "dance"}))
        assert "unknown action" in json.loads(await socket.recv())["message"]
        await socket.send(json.dumps({"action": "cancel"}))
        assert json.loads(await socket.recv())["message"] == "no run in progress on this connection"

        await socket.send(json.dumps({"action": "run", "query": "slow"}))
        assert json.loads(await socket.recv())["status"] == "processing"
        await socket.send(json.dumps({"action": "run", "query": "another"}))
        assert "in progress" in json.loads(await socket.recv())["message"]
        while not openai_server.requests:  # cancel during the model call
            await asyncio.sleep(0.01)
        await socket.send(json.dumps({"action": "cancel"}))
        frames = await frames_until_done(socket)

    types = [f["type"] for f in frames]
    assert types[0] == "status" and frames[0]["status"] == "cancelling"
    error = next(f for f in frames if f["type"] == "error")
    assert error["code"] == "cancelled"
    assert frames[-1]["status"] == "cancelled"
    # The cancel is found when the checkpoint written behind the next model call loses to
    # it: that call is made, its tool is not run.
    assert len(openai_server.requests) == 2
    assert types.count("tool_call") == 1


async def test_auth_by_query_or_header_and_close_codes(agents_dir, make_app, serve):
    write_agent(agents_dir, "helper")
    write_agent(agents_dir, "other")
    app = make_app()
    key = (await (await keys_of(app)).issue("acme", ["helper"])).plaintext
    base = await serve(app)

    async def rejected(url: str, **kwargs) -> tuple[dict, int]:
        async with websockets.connect(url, **kwargs) as socket:
            frame = json.loads(await socket.recv())
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await socket.recv()
        return frame, closed.value.rcvd.code

    frame, code = await rejected(f"{base}/v1/ws/agent/helper")
    assert (frame["type"], frame["code"], code) == ("error", "unauthorized", 4401)
    frame, code = await rejected(f"{base}/v1/ws/agent/other?api_key={key}")
    assert (frame["code"], code) == ("forbidden", 4403)
    frame, code = await rejected(
        f"{base}/v1/ws/agent/helpr", additional_headers={"x-api-key": "am_x_" + "A" * 20}
    )
    assert (frame["code"], code) == ("unauthorized", 4401)

    async with websockets.connect(
        f"{base}/v1/ws/agent/helper", additional_headers={"Authorization": f"Bearer {key}"}
    ) as socket:
        await socket.send(json.dumps({"action": "cancel"}))
        assert json.loads(await socket.recv())["code"] == "bad_request"  # accepted, then used
