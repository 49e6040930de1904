"""Every failure is ``{"error": {"code", "message"}, "detail": message}`` with the right status,
never a trace (``detail`` is upstream's FastAPI field, which its clients read)."""

from __future__ import annotations

import asyncio

from astromesh.runs.state import RunState
from astromesh.stores.memory import MemoryBackend, MemoryRunStore
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["detail"] == body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]


async def test_400_bad_json(agents_dir, make_app, client_for):
    write_agent(agents_dir)
    client = client_for(make_app())
    for headers in ({"content-type": "application/json"}, {}):
        response = await client.post(
            "/v1/agents/helper/run", content=b'{"query": ', headers=headers
        )
        error = assert_error(response, 400, "bad_json")
        assert error["message"].startswith("request body is not valid JSON")


async def test_422_names_each_field(agents_dir, make_app, client_for):
    write_agent(agents_dir)
    client = client_for(make_app())
    response = await client.post(
        "/v1/agents/helper/run", json={"session_id": 3, "context": [1], "extra": True}
    )
    error = assert_error(response, 422, "validation_error")
    fields = {f["field"]: f["type"] for f in error["fields"]}
    assert fields == {
        "query": "missing",
        "session_id": "string_type",
        "context": "dict_type",
    }
    limit = await client.get("/v1/memory/helper/history/s?limit=0")
    assert assert_error(limit, 422, "validation_error")["fields"][0]["field"] == "query.limit"
    not_object = await client.post(
        "/v1/agents/helper/run", content=b"[1]", headers={"content-type": "application/json"}
    )
    assert "must be a JSON object" in assert_error(not_object, 422, "validation_error")["message"]


async def test_404_and_405_for_routes(make_app, client_for):
    client = client_for(make_app())
    assert_error(await client.get("/v2/nothing"), 404, "not_found")
    assert_error(await client.delete("/v1/health"), 405, "method_not_allowed")


async def test_413_declared_and_streamed_bodies(agents_dir, make_app, client_for):
    write_agent(agents_dir)
    client = client_for(make_app(max_body_bytes=1000))
    big = {"query": "x" * 2000}
    error = assert_error(
        await client.post("/v1/agents/helper/run", json=big), 413, "payload_too_large"
    )
    assert "1000 bytes" in error["message"]

    async def chunks():
        for _ in range(5):
            yield b" " * 400

    streamed = await client.post(
        "/v1/agents", content=chunks(), headers={"content-type": "application/yaml"}
    )
    assert_error(streamed, 413, "payload_too_large")


async def test_429_when_every_run_slot_is_taken(agents_dir, make_app, client_for, openai_server):
    write_agent(agents_dir, model=primary(openai_server.url))
    openai_server.push(Reply("slow", delay=0.5), Reply("next"))
    client = client_for(make_app(max_inflight_runs=1))

    first = asyncio.create_task(client.post("/v1/agents/helper/run", json={"query": "a"}))
    await asyncio.sleep(0.2)
    refused = await client.post("/v1/agents/helper/run", json={"query": "b"})
    assert_error(refused, 429, "too_many_runs")
    assert refused.headers["retry-after"] == "1"
    assert (await first).json()["answer"] == "slow"
    assert (await client.post("/v1/agents/helper/run", json={"query": "c"})).status_code == 200


class _BrokenRuns(MemoryRunStore):
    async def create(self, run: RunState) -> RunState:
        raise RuntimeError("database password is hunter2")


async def test_500_hides_the_cause(agents_dir, make_app, client_for, caplog):
    write_agent(agents_dir)
    state = MemoryBackend()
    state.runs = _BrokenRuns()
    client = client_for(make_app(state=state))
    for route in ("/v1/agents/helper/run", "/v1/agents/helper/stream"):
        response = await client.post(route, json={"query": "q"})
        error = assert_error(response, 500, "internal_error")
        assert "hunter2" not in response.text and "RuntimeError" not in response.text
        assert error["message"] == "internal error; the server log has the details"
    assert "hunter2" in caplog.text  # the operator still sees it


async def test_semantic_memory_of_an_agent_without_one_is_a_clear_404_not_a_5xx(
    agents_dir, make_app, client_for
):
    write_agent(agents_dir)
    client = client_for(make_app())
    response = await client.get("/v1/memory/helper/semantic?query=x")
    assert (
        "spec.memory.semantic"
        in assert_error(response, 404, "semantic_memory_not_configured")["message"]
    )
