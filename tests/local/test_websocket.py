"""A WebSocket run through `astromesh local`: $connect on the upgrade (ws_connect), the run
message on $default (ws_message hands it to an Event invocation of itself), and the frames it
posts with the Management API arrive on the real socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from tests.local.conftest import SAMPLE_KEY
from tests.support.local_server import LocalServer
from tests.support.model_servers import Reply, ScriptedOpenAIServer


async def next_frame(ws: Any, local: LocalServer) -> dict[str, Any]:
    try:
        return json.loads(await asyncio.wait_for(ws.recv(), 90))
    except TimeoutError:
        raise AssertionError(f"no frame; the server said:\n{local.output[-5000:]}") from None


async def frames_until_done(ws: Any, local: LocalServer) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] != "done":
        frames.append(await next_frame(ws, local))
    return frames


async def test_token_frames_arrive_on_the_socket(local: LocalServer, model: ScriptedOpenAIServer):
    answer = "Frames travel from the function to this very socket, token by token."
    model.push(Reply(tool_calls=[("add", {"a": 40, "b": 2})]), Reply(answer, chunk_delay=0.003))
    url = f"{local.ws_url}/?api_key={SAMPLE_KEY}&agent=helper&session_id=local-ws"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"action": "run", "query": "add, then tell me"}))
        frames = await frames_until_done(ws, local)

    types = [f["type"] for f in frames]
    assert types[0] == "status"
    assert types.index("tool_call") < types.index("tool_result") < types.index("token")
    assert "".join(f["content"] for f in frames if f["type"] == "token") == answer
    done = frames[-1]
    assert (done["status"], done["answer"], done["session_id"]) == (
        "succeeded",
        answer,
        "local-ws",
    )


async def test_a_bad_message_is_an_error_frame_and_the_socket_stays(local: LocalServer):
    async with websockets.connect(f"{local.ws_url}/?api_key={SAMPLE_KEY}") as ws:
        await ws.send("not json")
        frame = await next_frame(ws, local)
        assert (frame["type"], frame["code"]) == ("error", "bad_request")
        await ws.send(json.dumps({"action": "cancel"}))
        frame = await next_frame(ws, local)
        assert frame["type"] == "error" and "no run in progress" in frame["message"]


async def test_a_refused_connect_refuses_the_handshake(local: LocalServer):
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"{local.ws_url}/?api_key=am_nokey_{'x' * 20}"):
            pass
    assert refused.value.response.status_code == 401
    body = json.loads(refused.value.response.body)  # ws_connect's own answer
    assert body["error"]["code"] == "unauthorized"
