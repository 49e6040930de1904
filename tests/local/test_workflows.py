"""A workflow through `astromesh local`: the API function starts an execution of the workflow
machine the templates declare, its agent step runs as a child execution of the Standard
machine, the approval waits on a task token, and approve over REST completes it."""

from __future__ import annotations

import time

import httpx

from tests.local.conftest import KEY_HEADERS
from tests.support.local_server import ACCOUNT, REGION, LocalServer
from tests.support.model_servers import Reply, ScriptedOpenAIServer

WORKFLOWS = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:astromesh-dev-runs-workflows"


def _run(local: LocalServer, run_id: str) -> dict:
    answer = httpx.get(f"{local.url}/v1/workflows/runs/{run_id}", headers=KEY_HEADERS, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _until(local: LocalServer, run_id: str, states: set[str]) -> dict:
    deadline = time.monotonic() + 90
    while (run := _run(local, run_id))["state"] not in states:
        assert time.monotonic() < deadline, run
        time.sleep(0.2)
    return run


def test_a_workflow_runs_on_the_workflow_machine_and_is_approved(
    local: LocalServer, assistant_model: ScriptedOpenAIServer
):
    assistant_model.push(Reply("the launch note"))

    started = httpx.post(
        f"{local.url}/v1/workflows/review/run",
        json={"query": "write the launch note"},
        headers=KEY_HEADERS,
        timeout=60,
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    waiting = _until(local, run_id, {"awaiting_approval"})
    assert waiting["pending_approval"]["prompt"] == "Publish the launch note?"

    deadline = time.monotonic() + 30
    while True:  # 409 until the machine has stored the approval's task token
        decided = httpx.post(
            f"{local.url}/v1/workflows/runs/{run_id}/approve",
            json={"approver": "ana", "comment": "ship it"},
            headers=KEY_HEADERS,
            timeout=60,
        )
        if decided.status_code != 409 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert decided.status_code == 200, decided.text

    done = _until(local, run_id, {"completed", "failed", "rejected", "timed_out"})
    assert done["state"] == "completed"
    assert done["steps"]["approve"]["output"]["comment"] == "ship it"
    sfn = local.client("stepfunctions")
    execution = WORKFLOWS.replace(":stateMachine:", ":execution:") + f":{run_id}"
    assert sfn.describe_execution(executionArn=execution)["status"] == "SUCCEEDED"
    child = done["steps"]["draft"]["child_run_id"]
    standard = WORKFLOWS.replace("runs-workflows", "runs-standard")
    child_execution = standard.replace(":stateMachine:", ":execution:") + f":{child}"
    assert sfn.describe_execution(executionArn=child_execution)["status"] == "SUCCEEDED"
