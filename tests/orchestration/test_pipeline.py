"""Pipeline end to end: agent stages as child runs, prompt stages on the pipeline's model."""

from __future__ import annotations

from pathlib import Path

import pytest

from astromesh.config import load_path
from astromesh.errors import ConfigurationError
from astromesh.rag import PipelineRegistry, ingest_paths
from astromesh.runs.state import RunStatus
from tests.support.agents import python_tool
from tests.support.model_servers import Reply
from tests.support.orchestration import (
    step_types,
    steps_of,
    stored,
    user_contents,
    write_pattern_agent,
    write_worker,
)

SUMMARY = "Summarise for {{ query }}: {{ input }} (research said: {{ stages.research }})"


async def test_agent_stage_then_prompt_stage(openai_server, agents_dir, make_runtime, recorder):
    write_worker(agents_dir, "researcher", openai_server.url)
    write_pattern_agent(
        agents_dir,
        "pipe",
        openai_server.url,
        "pipeline",
        stages=[
            {"name": "research", "agent": "researcher"},
            {"name": "summary", "prompt": SUMMARY},
        ],
    )
    # requests arrive in order: the researcher's child run, then the summary stage
    openai_server.push(Reply("Mars has two moons."), Reply("Two moons."))
    runtime = make_runtime()

    run = await runtime.run("pipe", "moons of Mars?", session_id="s1", on_event=recorder)

    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.answer == "Two moons."
    assert step_types(run) == ["prepare", "tool_call", "stage", "model_call", "stage"]
    call = steps_of(run, "tool_call")[0]
    assert (call["name"], call["arguments"], call["ok"], call["result"]) == (
        "researcher",
        {"query": "moons of Mars?"},
        True,
        "Mars has two moons.",
    )
    assert [s["name"] for s in steps_of(run, "stage")] == ["research", "summary"]
    # the research stage was a child run: stored, linked, one level deeper, own session
    child = await stored(runtime, call["child_run_id"])
    assert (child.agent, child.parent_run_id, child.depth) == ("researcher", run.id, 1)
    assert child.session_id == "s1/researcher"
    assert child.query == "moons of Mars?" and child.answer == "Mars has two moons."
    # the prompt stage saw the rendered template after the pipeline's own system prompt
    summary_request = openai_server.requests[1]
    assert summary_request["messages"][0] == {"role": "system", "content": "You are Helper."}
    assert user_contents(summary_request) == [
        "Summarise for moons of Mars?: Mars has two moons. (research said: Mars has two moons.)"
    ]
    assert "tools" not in summary_request
    assert recorder.tokens() == "Two moons."


async def test_prompt_stages_chain_their_outputs(openai_server, agents_dir, make_runtime, recorder):
    write_pattern_agent(
        agents_dir,
        "pipe",
        openai_server.url,
        "pipeline",
        stages=[
            {"name": "draft", "prompt": "Draft an answer to: {{ input }}"},
            {"name": "polish", "prompt": "Polish: {{ input }}"},
        ],
    )
    openai_server.push(Reply("rough draft"), Reply("Polished answer."))
    run = await make_runtime().run("pipe", "why is the sky blue?", on_event=recorder)
    assert run.status is RunStatus.SUCCEEDED and run.answer == "Polished answer."
    assert [user_contents(r) for r in openai_server.requests] == [
        ["Draft an answer to: why is the sky blue?"],
        ["Polish: rough draft"],
    ]
    # only the last stage streams to the user; both ran in one step (no iteration used)
    assert recorder.tokens() == "Polished answer."
    assert {s.iteration for s in run.steps} == {0}


async def test_a_failing_agent_stage_fails_the_run_naming_the_stage(
    openai_server, agents_dir, make_runtime
):
    write_worker(agents_dir, "researcher", openai_server.url)
    write_pattern_agent(
        agents_dir,
        "pipe",
        openai_server.url,
        "pipeline",
        stages=[
            {"name": "research", "agent": "researcher"},
            {"name": "summary", "prompt": SUMMARY},
        ],
    )
    openai_server.push(Reply("model refused", status=400))
    runtime = make_runtime()
    run = await runtime.run("pipe", "moons?")
    assert run.status is RunStatus.FAILED
    assert run.error.startswith("pipeline stage 'research' (agent 'researcher') failed: ")
    assert "model refused" in run.error
    assert run.steps[-1].data["code"] == "stage_failed"
    call = steps_of(run, "tool_call")[0]
    assert call["ok"] is False
    child = await stored(runtime, call["child_run_id"])
    assert child.status is RunStatus.FAILED and child.parent_run_id == run.id
    assert len(openai_server.requests) == 1  # the summary stage never ran


async def test_unknown_stage_agent_fails_at_build_time(openai_server, agents_dir, make_runtime):
    write_worker(agents_dir, "researcher", openai_server.url)
    write_pattern_agent(
        agents_dir,
        "pipe",
        openai_server.url,
        "pipeline",
        stages=[{"name": "research", "agent": "reseacher"}],
    )
    runtime = make_runtime()
    with pytest.raises(ConfigurationError) as caught:
        await runtime.get("pipe")
    message = str(caught.value)
    assert "orchestration.stages[0] (research)" in message
    assert "agent 'reseacher' is not defined; did you mean 'researcher'?" in message
    assert openai_server.requests == []


async def test_stage_agents_are_permitted_whatever_allowed_actions_says(
    openai_server, agents_dir, make_runtime
):
    write_worker(agents_dir, "researcher", openai_server.url)
    write_pattern_agent(
        agents_dir,
        "pipe",
        openai_server.url,
        "pipeline",
        stages=[{"name": "research", "agent": "researcher"}],
        permissions={"allowed_actions": []},
    )
    openai_server.push(Reply("found it"))
    run = await make_runtime().run("pipe", "look")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "found it"
    assert steps_of(run, "tool_call")[0]["permitted"] is True


# -- tool stages: retrieve, then answer, whatever the model -----------------------------------

KB_PIPELINE = """apiVersion: astromesh/v1
kind: RAGPipeline
metadata: {{name: kb}}
spec:
  chunking: {{strategy: markdown, chunk_size: 400, overlap: 0}}
  embeddings: {{provider: onnx, model: all-MiniLM-L6-v2}}
  vector_store: {{backend: faiss, path: {path}}}
"""


async def _ingest_kb(agents_dir: Path, docs: Path) -> None:
    """Index ``docs`` into the ``kb`` pipeline of ``agents_dir`` (as ``astromesh ingest`` does)."""
    registry = PipelineRegistry(load_path(agents_dir).rag_pipelines)
    try:
        report = await ingest_paths(await registry.get("kb"), [docs])
    finally:
        await registry.close()
    assert report.ok and report.chunks_written >= 2


async def test_a_tool_stage_retrieves_and_the_next_stage_answers_from_it(
    openai_server, agents_dir, make_runtime, tmp_path
):
    agents_dir.mkdir()
    (agents_dir / "kb.rag.yaml").write_text(KB_PIPELINE.format(path=tmp_path / "kb.faiss"))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tides.md").write_text("# Tides\nThe Moon's gravity pulls the oceans into tides.")
    (docs / "bread.md").write_text("# Bread\nYeast ferments sugar, so the dough rises.")
    await _ingest_kb(agents_dir, docs)
    write_pattern_agent(
        agents_dir,
        "guide",
        openai_server.url,
        "pipeline",
        stages=[
            {"name": "retrieve", "tool": "search"},
            {"name": "answer", "prompt": "Passages:\n{{ input }}\nAnswer: {{ query }}"},
        ],
        tools=[{"name": "search", "type": "rag", "pipeline": "kb", "top_k": 1}],
        permissions={"allowed_actions": ["search"]},
    )
    openai_server.push(Reply("The Moon's gravity."))

    run = await make_runtime().run("guide", "What causes tides in the ocean?")

    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.answer == "The Moon's gravity."
    assert step_types(run) == ["prepare", "tool_call", "stage", "model_call", "stage"]
    call = steps_of(run, "tool_call")[0]
    assert (call["name"], call["arguments"], call["ok"]) == (
        "search",
        {"query": "What causes tides in the ocean?"},
        True,
    )
    assert "tides.md" in call["result"] and "pulls the oceans" in call["result"]
    assert "Yeast" not in call["result"]  # top_k 1: only the relevant passage
    assert [(s["name"], s["kind"]) for s in steps_of(run, "stage")] == [
        ("retrieve", "tool"),
        ("answer", "prompt"),
    ]
    # the model never saw a tool; it answered from the passages the stage put in its prompt
    [request] = openai_server.requests
    assert "tools" not in request
    [prompt] = user_contents(request)
    assert "pulls the oceans into tides" in prompt
    assert prompt.endswith("Answer: What causes tides in the ocean?")


async def test_a_failing_tool_stage_fails_the_run_naming_the_stage_and_tool(
    openai_server, agents_dir, make_runtime
):
    write_pattern_agent(
        agents_dir,
        "pipe",
        openai_server.url,
        "pipeline",
        stages=[{"name": "lookup", "tool": "boom"}, {"name": "answer", "prompt": "{{ input }}"}],
        tools=[python_tool("boom", "explode")],  # takes `reason`, not `query`
    )
    run = await make_runtime().run("pipe", "anything")
    assert run.status is RunStatus.FAILED
    assert run.error.startswith("pipeline stage 'lookup' (tool 'boom') failed: ")
    assert run.steps[-1].data["code"] == "stage_failed"
    assert steps_of(run, "tool_call")[0]["ok"] is False
    assert openai_server.requests == []  # the answer stage never ran


def test_a_tool_stage_must_name_a_permitted_tool_of_the_agent(agents_dir):
    write_pattern_agent(
        agents_dir,
        "pipe",
        "http://127.0.0.1:9/v1",
        "pipeline",
        stages=[{"name": "lookup", "tool": "add"}],
        tools=[python_tool("add", "add")],
        permissions={"allowed_actions": []},
    )
    (issue,) = load_path(agents_dir).errors
    assert issue.field == "spec.orchestration.stages[0].tool"
    assert "tool 'add' is not in permissions.allowed_actions" in issue.message


def test_a_stage_is_exactly_one_kind(agents_dir):
    write_pattern_agent(
        agents_dir,
        "pipe",
        "http://127.0.0.1:9/v1",
        "pipeline",
        stages=[{"name": "both", "tool": "add", "prompt": "{{ input }}"}],
        tools=[python_tool("add", "add")],
    )
    (issue,) = load_path(agents_dir).errors
    assert "stage 'both' needs exactly one of 'agent', 'tool' or 'prompt'" in issue.message
    assert issue.field == "spec.orchestration.stages[0].prompt"
