"""Memory history (the real one), tools with their schemas, health and the OpenAPI document."""

from __future__ import annotations

from tests.support.agents import primary, python_tool, write_agent
from tests.support.model_servers import Reply


async def test_history_is_the_real_conversation(agents_dir, make_app, client_for, openai_server):
    write_agent(agents_dir, model=primary(openai_server.url))
    openai_server.push(Reply("one"), Reply("two"))
    client = client_for(make_app())
    for query in ("q1", "q2"):
        await client.post("/v1/agents/helper/run", json={"query": query, "session_id": "s"})

    body = (await client.get("/v1/memory/helper/history/s")).json()
    assert body == {
        "agent": "helper",
        "session_id": "s",
        "history": [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "one"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "two"},
        ],
        "limit": 50,
    }
    last = (await client.get("/v1/memory/helper/history/s?limit=2")).json()
    assert [m["content"] for m in last["history"]] == ["q2", "two"] and last["limit"] == 2

    cleared = await client.delete("/v1/memory/helper/history/s")
    assert cleared.json() == {
        "agent": "helper",
        "session_id": "s",
        "status": "cleared",
        "removed": 4,
    }
    assert (await client.get("/v1/memory/helper/history/s")).json()["history"] == []
    assert (await client.get("/v1/memory/nobody/history/s")).status_code == 404


async def test_tools_list_every_agents_tools_with_json_schema(agents_dir, make_app, client_for):
    write_agent(agents_dir, "calc", tools=[python_tool("add", "add")])
    write_agent(
        agents_dir, "broken", tools=[python_tool("gone", "no_such_function", description="Gone")]
    )
    write_agent(agents_dir, "plain")
    client = client_for(make_app())
    tools = (await client.get("/v1/tools")).json()["tools"]

    by_agent = {t["agent"]: t for t in tools}
    assert set(by_agent) == {"calc"}  # "broken" cannot run: skipped, like in GET /v1/agents
    [skipped] = (await client.get("/v1/agents")).json()["skipped"]
    assert skipped["name"] == "broken" and "no_such_function" in skipped["message"]
    add = by_agent["calc"]
    assert (add["name"], add["type"], add["available"]) == ("add", "python", True)
    assert add["parameters"]["type"] == "object"
    assert add["parameters"]["required"] == ["a", "b"]
    assert add["parameters"]["properties"]["a"]["type"] == "integer"


async def test_health_and_openapi(agents_dir, make_app, client_for):
    write_agent(agents_dir)
    client = client_for(make_app())
    health = (await client.get("/v1/health")).json()
    assert health["status"] == "ok" and health["agents"] == 1 and health["auth"] == "auto"

    spec = (await client.get("/openapi.json")).json()
    for path in (
        "/v1/health",
        "/v1/agents",
        "/v1/agents/{name}",
        "/v1/agents/{name}/run",
        "/v1/agents/{name}/stream",
        "/v1/agents/{name}/pause",
        "/v1/runs/{run_id}",
        "/v1/runs/{run_id}/cancel",
        "/v1/memory/{agent}/history/{session_id}",
        "/v1/memory/{agent}/semantic",
        "/v1/tools",
        "/v1/rag/ingest",
        "/v1/rag/query",
    ):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert {"RunRequest", "RunResponse", "ErrorResponse", "AgentList", "HistoryResponse"} <= set(
        schemas
    )
    assert set(schemas["RunRequest"]["properties"]) == {
        "query",
        "session_id",
        "context",
        "async",
        "connections",
    }
    run = spec["paths"]["/v1/agents/{name}/run"]["post"]
    assert {"200", "202", "404", "422", "429"} <= set(run["responses"])
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
