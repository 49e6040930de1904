"""The ``astromesh`` command end to end, in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from astromesh import __version__
from tests.support.agents import primary, python_tool, write_agent
from tests.support.model_servers import Reply

REPO = Path(__file__).resolve().parents[1]


def astromesh(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 120
):
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join((str(REPO / "layers" / "runtime"), str(REPO))),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "astromesh.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_version():
    result = astromesh("version")
    assert result.returncode == 0 and result.stdout.strip() == __version__


def test_validate_accepts_the_shipped_agents():
    result = astromesh("validate", "agents")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 2 agent(s)")


def test_validate_reports_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.agent.yaml"
    bad.write_text(
        "apiVersion: astromesh/v1\nkind: Agent\nmetadata:\n  name: bad\nspec:\n"
        "  model:\n    primary: {provider: ollama, model: m}\n"
        "  orchestration:\n    max_iteration: 3\n"
    )
    result = astromesh("validate", str(tmp_path))
    assert result.returncode == 1
    assert f"{bad}:9:5: spec.orchestration.max_iteration:" in result.stderr
    assert "did you mean 'max_iterations'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_missing_path_is_a_clear_error(tmp_path):
    result = astromesh("validate", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "no such file or folder" in result.stderr


def test_agents_lists_name_version_pattern_and_description():
    result = astromesh("agents", "--agents", "agents")
    assert result.returncode == 0
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [r[0] for r in rows] == ["assistant", "text-analyst"]
    assert rows[0][1:4] == ["1.0.0", "default", "react"]


def test_run_streams_the_answer_and_reports_usage(openai_server, tmp_path):
    agents = tmp_path / "agents"
    write_agent(agents, model=primary(openai_server.url), tools=[python_tool("add", "add")])
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 40, "b": 2})], tokens_in=9, tokens_out=3),
        Reply("The answer is 42.", tokens_in=14, tokens_out=5),
    )
    env = {"ASTROMESH_STATE_PATH": str(tmp_path / "state.db")}
    result = astromesh("run", "helper", "40 + 2?", "--agents", str(agents), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The answer is 42.\n"
    assert '→ add({"a": 40, "b": 2})' in result.stderr
    assert "✓ add: 42" in result.stderr
    assert "succeeded" in result.stderr and "23 in / 8 out" in result.stderr


def test_run_json_has_the_rest_run_shape(openai_server, tmp_path):
    agents = tmp_path / "agents"
    write_agent(agents, model=primary(openai_server.url))
    openai_server.push(Reply("hello there"))
    env = {"ASTROMESH_STATE_PATH": str(tmp_path / "state.db")}
    result = astromesh(
        "run", "helper", "hi", "--agents", str(agents), "--session", "s9", "--json", env=env
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["answer"] == "hello there" and body["status"] == "succeeded"
    assert body["session_id"] == "s9" and body["run_id"].startswith("run_")
    assert set(body["usage"]) >= {"tokens_in", "tokens_out", "model", "by_model"}
    assert set(body["usage"]["by_model"][0]) >= {
        "provider",
        "model",
        "role",
        "calls",
        "tokens_in",
        "tokens_out",
        "cost",
    }
    assert [s["type"] for s in body["steps"]] == ["prepare", "model_call"]
    assert {"trace", "data"} <= set(body)


def test_run_unknown_agent_is_a_clean_error(tmp_path):
    write_agent(tmp_path / "agents", "support")
    result = astromesh("run", "suport", "hi", "--agents", str(tmp_path / "agents"))
    assert result.returncode == 2
    assert "agent 'suport' not found; did you mean 'support'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_the_model_down_exits_1_with_the_reason(closed_port_url, tmp_path):
    write_agent(tmp_path / "agents", model=primary(closed_port_url + "/v1"))
    env = {"ASTROMESH_STATE_PATH": str(tmp_path / "state.db")}
    result = astromesh("run", "helper", "hi", "--agents", str(tmp_path / "agents"), env=env)
    assert result.returncode == 1
    assert "failed" in result.stderr and "every candidate failed" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.embedded
def test_run_the_embedded_model_end_to_end(tmp_path):
    env = {"ASTROMESH_STATE_PATH": str(tmp_path / "state.db")}
    result = astromesh(
        "run",
        "assistant",
        "What is the capital of France?",
        "--agents",
        "agents",
        "--json",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["status"] == "succeeded"
    assert len(body["answer"].split()) >= 2
    [line] = body["usage"]["by_model"]
    assert (line["provider"], line["model"]) == ("llamacpp", "SmolLM2-135M-Instruct")
    assert line["tokens_in"] > 10 and line["tokens_out"] > 1


def test_each_run_is_its_own_conversation_unless_continued(openai_server, tmp_path):
    agents = tmp_path / "agents"
    write_agent(agents, model=primary(openai_server.url))
    openai_server.push(Reply("first"), Reply("second"), Reply("third"))
    env = {"ASTROMESH_STATE_PATH": str(tmp_path / "state.db")}
    one = astromesh("run", "helper", "my name is Ada", "--agents", str(agents), "--json", env=env)
    two = astromesh("run", "helper", "what is my name?", "--agents", str(agents), env=env)
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    first = json.loads(one.stdout)["session_id"]
    assert first.startswith("cli-")
    # the second run did not see the first one's turns...
    assert all("Ada" not in str(m) for m in openai_server.requests[1]["messages"])
    assert f"session {first}" not in two.stderr
    # ...and --session continues a conversation
    three = astromesh(
        "run", "helper", "and now?", "--agents", str(agents), "--session", first, env=env
    )
    assert three.returncode == 0, three.stderr
    assert any("Ada" in str(m) for m in openai_server.requests[2]["messages"])
    assert f"session {first}" in three.stderr


def test_run_a_workflow_with_an_approval_then_the_server_approves_it(openai_server, tmp_path):
    """``astromesh run --workflow`` stops at the approval; ``astromesh dev``'s app over the
    same state lists it, and approving it there completes the run."""
    import asyncio

    import httpx

    from astromesh.channels import ServerSettings, create_app
    from astromesh.runtime import AgentRuntime

    agents = tmp_path / "agents"
    write_agent(agents, "writer", model=primary(openai_server.url))
    (agents / "outreach.workflow.yaml").write_text(
        """apiVersion: astromesh/v1
kind: Workflow
metadata: {name: outreach}
spec:
  steps:
    - name: draft
      agent: writer
    - name: review
      approval: {prompt: "Send {{ steps.draft.output }}?"}
    - name: stamp
      tool: current_time
"""
    )
    openai_server.push(Reply("Hi ACME"))
    env = {"ASTROMESH_STATE_PATH": str(tmp_path / "state.db")}
    result = astromesh(
        "run",
        "--workflow",
        "outreach",
        "--input",
        '{"query": "ACME"}',
        "--agents",
        str(agents),
        "--json",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["state"] == "awaiting_approval"
    assert body["pending_approval"]["prompt"] == "Send Hi ACME?"

    async def approve() -> dict:
        runtime = AgentRuntime(agents, env=env)
        app = create_app(runtime, ServerSettings())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            decided = await client.post(
                f"/v1/workflows/runs/{body['run_id']}/approve", json={"approver": "me"}
            )
            record = (await client.get(f"/v1/workflows/runs/{body['run_id']}")).json()
        await app.state.services.aclose()
        await runtime.close()
        return {"decided": decided.json(), "record": record}

    answers = asyncio.run(approve())
    assert answers["decided"]["state"] == "completed"
    assert answers["record"]["steps"]["stamp"]["status"] == "succeeded"


def test_run_a_missing_workflow_is_a_clean_error(tmp_path):
    (tmp_path / "agents").mkdir()
    result = astromesh("run", "--workflow", "nope", "--agents", str(tmp_path / "agents"))
    assert result.returncode == 2
    assert "workflow 'nope' not found" in result.stderr
