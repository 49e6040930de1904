"""The `astromesh local` command itself: a first start synthesizes cdk.out (here for a
concrete account and region, which the emulation then uses), a stale assembly is noticed,
`invoke` without a running emulation starts one for the invocation, and bad options are
refused naming the option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from astromesh.local.synth import is_fresh
from tests.local.conftest import KEY_HEADERS
from tests.support.agents import primary, python_tool, write_agent
from tests.support.local_server import REPO, LocalServer, command_env, free_port
from tests.support.model_servers import Reply


def test_a_first_start_synthesizes_for_the_given_environment(tmp_path, redis_url, openai_server):
    write_agent(tmp_path / "agents", "helper", model=primary(openai_server.url),
                tools=[python_tool("add", "add")])  # fmt: skip
    openai_server.push(Reply(tool_calls=[("add", {"a": 1, "b": 1})]), Reply("Two."))
    server = LocalServer(
        "--cdk-out", str(tmp_path / "cdk.out"),
        "--state-path", str(tmp_path / "state.db"),
        "--agents", str(tmp_path / "agents"),
        "--redis-url", redis_url,
        env={"CDK_DEFAULT_ACCOUNT": "111122223333", "CDK_DEFAULT_REGION": "eu-west-1"},
    )  # fmt: skip
    with server:
        answer = httpx.post(f"{server.url}/v1/agents/helper/run", json={"query": "1+1?"},
                            headers=KEY_HEADERS, timeout=120)  # fmt: skip
        express = server.client("stepfunctions", region="eu-west-1")
        executions = express.list_executions(
            stateMachineArn="arn:aws:states:eu-west-1:111122223333:stateMachine:"
            "astromesh-dev-runs-express"
        )["executions"]
    assert server.stop() == 0  # Ctrl+C ends it cleanly
    assert (tmp_path / "cdk.out" / "manifest.json").is_file()
    summary = server.output
    assert "cdk.out synthesized in" in summary
    assert "account 111122223333, region eu-west-1" in summary
    assert "Not emulated: RDS Proxy" in summary and "GPU model endpoint" in summary
    assert summary.splitlines()[-1] == "stopped" and "Traceback" not in summary
    assert answer.status_code == 200, answer.text
    assert answer.json()["answer"] == "Two."
    assert [e["name"] for e in executions] == [answer.json()["run_id"]]


def _fake_project(root: Path) -> tuple[Path, Path]:
    for name in ("infra/app.py", "functions/api/handler.py", "agents/a.agent.yaml", "cdk.json"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    out = root / "cdk.out"
    out.mkdir()
    manifest = {"artifacts": {"astromesh-dev-runtime": {"type": "aws:cloudformation:stack"}}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return root, out


def test_an_assembly_older_than_its_sources_is_stale(tmp_path):
    repo, out = _fake_project(tmp_path)
    old = (out / "manifest.json").stat().st_mtime - 100
    for path in repo.rglob("*"):
        if path.is_file() and path.name != "manifest.json":
            os.utime(path, (old, old))
    assert is_fresh(repo, out, "dev")
    assert not is_fresh(repo, out, "prod")  # no stack of that stage
    os.utime(repo / "functions" / "api" / "handler.py")  # edited after the synth
    assert not is_fresh(repo, out, "dev")
    assert not is_fresh(repo, tmp_path / "missing", "dev")


def test_invoke_without_an_emulation_starts_one(tmp_path, cdk_out, redis_url):
    completed = subprocess.run(
        [sys.executable, "-m", "astromesh.cli", "local", "--aws-port", str(free_port()),
         "--cdk-out", str(cdk_out), "--state-path", str(tmp_path / "state.db"),
         "--redis-url", redis_url,
         "invoke", "api", "-e", str(REPO / "events" / "api" / "health.json")],
        cwd=REPO, env=command_env(), capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    answer = json.loads(completed.stdout)  # the logs went to stderr
    assert answer["statusCode"] == 200
    assert "starting one" in completed.stderr


def test_a_bad_env_vars_file_is_refused_naming_it(tmp_path, cdk_out):
    bad = tmp_path / "env.json"
    bad.write_text(json.dumps({"Parameters": {"X": ["not", "a", "string"]}}))
    completed = subprocess.run(
        [sys.executable, "-m", "astromesh.cli", "local", "--cdk-out", str(cdk_out),
         "--aws-port", str(free_port()), "--port", str(free_port()), "--env-vars", str(bad)],
        cwd=REPO, env=command_env(), capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert completed.returncode == 2
    assert f"--env-vars {bad}" in completed.stderr and "'Parameters'" in completed.stderr
