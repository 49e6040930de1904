"""AgentRuntime: loading a folder, serving agents by name, building once, persisting runs."""

from __future__ import annotations

import pytest

from astromesh.errors import ConfigurationError, NotFoundError
from astromesh.runs.state import RunStatus
from astromesh.runtime import AgentRuntime
from tests.support.agents import primary, python_tool, write_agent
from tests.support.model_servers import Reply


async def test_a_bad_file_is_reported_and_the_others_load(agents_dir, make_runtime):
    write_agent(agents_dir, "good")
    (agents_dir / "bad.agent.yaml").write_text(
        "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {name: bad}\nspec:\n  model: 12\n"
    )
    runtime = make_runtime()
    assert runtime.agent_names() == ["good"]
    [issue] = runtime.issues
    assert issue.file.endswith("bad.agent.yaml") and issue.line == 5
    assert issue.field == "spec.model"


async def test_unknown_agent_names_the_nearest(agents_dir, make_runtime):
    write_agent(agents_dir, "support")
    runtime = make_runtime()
    with pytest.raises(NotFoundError, match=r"agent 'suport' not found; did you mean 'support'\?"):
        await runtime.get("suport")
    assert runtime.describe("support").metadata.namespace == "tests"


async def test_services_are_built_once_and_shared(agents_dir, make_runtime):
    write_agent(agents_dir, "a")
    runtime = make_runtime()
    assert await runtime.get("a") is await runtime.get("a")


async def test_a_rag_tool_naming_an_unknown_pipeline_is_refused_at_build(agents_dir, make_runtime):
    write_agent(agents_dir, tools=[{"name": "kb", "type": "rag", "pipeline": "docs"}])
    with pytest.raises(ConfigurationError, match="unknown RAG pipeline 'docs'"):
        await make_runtime().get("helper")


async def test_a_rag_tool_retrieves_from_its_pipeline(
    openai_server, agents_dir, make_runtime, tmp_path
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=[{"name": "kb", "type": "rag", "pipeline": "handbook", "top_k": 1}],
    )
    (agents_dir / "handbook.rag.yaml").write_text(
        "apiVersion: astromesh/v1\nkind: RAGPipeline\nmetadata: {name: handbook}\nspec:\n"
        "  chunking: {strategy: sentence, chunk_size: 40, overlap: 0}\n"
        "  embeddings: {provider: onnx, model: all-MiniLM-L6-v2}\n"
        f"  vector_store: {{backend: faiss, path: '{tmp_path / 'kb.faiss'}'}}\n"
        "  retrieval: {top_k: 3}\n"
    )
    runtime = make_runtime()
    pipeline = await (await runtime.rag()).get("handbook")
    await pipeline.ingest(
        "Refunds are paid within 14 days. The office cat is called Miso.", {}, "handbook"
    )
    openai_server.push(
        Reply(tool_calls=[("kb", {"query": "How long do refunds take?"})]), Reply("14 days.")
    )
    run = await runtime.run("helper", "How long do refunds take?")
    assert run.status is RunStatus.SUCCEEDED
    tool_step = next(s for s in run.steps if s.type == "tool_call")
    assert tool_step.data["ok"] and "14 days" in tool_step.data["result"]
    assert "Miso" not in tool_step.data["result"]


async def test_an_mcp_server_that_cannot_start_fails_the_run_not_the_build(
    agents_dir, make_runtime
):
    write_agent(
        agents_dir,
        tools=[{"name": "files", "type": "mcp", "transport": "stdio", "command": "mcp-files"}],
    )
    runtime = make_runtime()
    agent = await runtime.get("helper")  # building starts nothing
    assert agent.tools.pending == ["files"]
    run = await runtime.run("helper", "hi")
    assert run.status is RunStatus.FAILED
    assert "tool 'files': cannot connect to the MCP server (mcp-files)" in run.error
    assert [s.data["code"] for s in run.steps if s.type == "stopped"] == ["tools_unavailable"]


async def test_a_handler_that_does_not_import_is_refused_at_build(agents_dir, make_runtime):
    write_agent(agents_dir, tools=[python_tool("x", "no_such_function")])
    with pytest.raises(ConfigurationError, match="has no 'no_such_function'"):
        await make_runtime().get("helper")


async def test_provider_config_names_resolve_to_their_endpoint_and_key(
    openai_server, agents_dir, make_runtime
):
    (agents_dir / "providers.yaml").parent.mkdir(parents=True, exist_ok=True)
    (agents_dir / "providers.yaml").write_text(
        f"""apiVersion: astromesh/v1
kind: ProviderConfig
metadata: {{name: local}}
spec:
  providers:
    house:
      type: openai_compat
      endpoint: "{openai_server.url}"
      api_key_env: HOUSE_KEY
      models: [scripted]
"""
    )
    write_agent(agents_dir, model={"primary": {"provider": "house", "model": "scripted"}})
    openai_server.push(Reply("hello"))
    run = await make_runtime(env={"HOUSE_KEY": "sk-test-123"}).run("helper", "hi")
    assert run.status is RunStatus.SUCCEEDED
    assert openai_server.request_headers[0]["authorization"] == "Bearer sk-test-123"
    assert run.usage.by_model[0].provider == "house"


async def test_runs_and_history_persist_in_sqlite_across_restarts(
    openai_server, agents_dir, tmp_path
):
    write_agent(agents_dir, model=primary(openai_server.url))
    openai_server.push(Reply("first answer"), Reply("second answer"))
    env = {"ASTROMESH_STATE_PATH": str(tmp_path / "state.db")}

    async with AgentRuntime(agents_dir, env=env) as runtime:
        first = await runtime.run("helper", "one", session_id="s")
    async with AgentRuntime(agents_dir, env=env) as runtime:
        second = await runtime.run("helper", "two", session_id="s")
        runs = await (await runtime.state()).runs.list_runs(agent="helper")
        stored_first = await (await runtime.state()).runs.get(first.id)

    assert [r.id for r in runs] == [second.id, first.id]
    assert stored_first.query == "one" and stored_first.answer == "first answer"
    assert stored_first.usage.tokens_in == 11 and [s.type for s in stored_first.steps] == [
        "prepare",
        "model_call",
    ]
    # the restarted runtime recalled the first turn from the SQLite history
    assert [m["content"] for m in openai_server.requests[1]["messages"]][1:3] == [
        "one",
        "first answer",
    ]


async def test_state_on_redis_and_postgres(openai_server, agents_dir, redis_url, postgres_schema):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        memory={"conversational": {"backend": "redis", "max_turns": 5}},
    )
    openai_server.push(Reply("a1"), Reply("a2"))
    env = {
        "ASTROMESH_STATE_BACKEND": "postgres",
        "ASTROMESH_POSTGRES_DSN": postgres_schema,
        "ASTROMESH_REDIS_URL": redis_url,
    }
    async with AgentRuntime(agents_dir, env=env) as runtime:
        await runtime.run("helper", "q1", session_id="shared")
        run = await runtime.run("helper", "q2", session_id="shared")
        stored = await (await runtime.state()).runs.get(run.id)
        agent = await runtime.get("helper")
        key = agent.session_key("shared")
        history = await agent.memory.history(key)
        assert await agent.memory.clear(key) == 4
    assert stored.status is RunStatus.SUCCEEDED and stored.answer == "a2"
    assert [m.content for m in history] == ["q1", "a1", "q2", "a2"]


async def test_runtime_config_defaults_fill_what_an_agent_leaves_out(
    openai_server, agents_dir, make_runtime
):
    write_agent(
        agents_dir, "plain", model=primary(openai_server.url), orchestration={"pattern": "react"}
    )
    write_agent(
        agents_dir,
        "explicit",
        model=primary(openai_server.url),
        orchestration={"pattern": "react", "max_iterations": 7},
    )
    (agents_dir / "runtime.yaml").write_text(
        "apiVersion: astromesh/v1\nkind: RuntimeConfig\nmetadata: {name: r}\n"
        "spec:\n  defaults:\n    orchestration: {max_iterations: 3, timeout_seconds: 12}\n"
    )
    runtime = make_runtime()
    plain, explicit = await runtime.get("plain"), await runtime.get("explicit")
    assert (plain.max_iterations, plain.timeout_seconds) == (3, 12)
    assert (explicit.max_iterations, explicit.timeout_seconds) == (7, 12)
