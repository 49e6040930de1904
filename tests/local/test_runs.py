"""REST runs through `astromesh local`: a synchronous run on the Express machine, whose
orchestration_step and tool_executor tasks the state machine invokes, and an async run on the
Standard machine, polled to its answer over REST."""

from __future__ import annotations

import time

import httpx

from tests.local.conftest import KEY_HEADERS
from tests.support.local_server import ACCOUNT, REGION, LocalServer
from tests.support.model_servers import Reply, ScriptedOpenAIServer


def machine_arn(kind: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:astromesh-dev-runs-{kind}"


def invoked_functions(local: LocalServer, kind: str, run_id: str) -> list[str]:
    """The Lambda functions the machine's tasks invoked for ``run_id``'s execution, in order."""
    execution = machine_arn(kind).replace(":stateMachine:", ":execution:") + f":{run_id}"
    events = local.client("stepfunctions").get_execution_history(
        executionArn=execution, maxResults=1000
    )["events"]
    return [
        e["taskScheduledEventDetails"]["parameters"] for e in events if e["type"] == "TaskScheduled"
    ]


def test_a_rest_run_goes_through_the_express_machine(local: LocalServer, model):
    model.push(Reply(tool_calls=[("add", {"a": 2, "b": 3})]), Reply("It is 5."))

    answer = httpx.post(
        f"{local.url}/v1/agents/helper/run",
        json={"query": "2+3?", "session_id": "local-rest"},
        headers=KEY_HEADERS,
        timeout=120,
    )

    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert (run["status"], run["answer"]) == ("succeeded", "It is 5.")
    tasks = invoked_functions(local, "express", run["run_id"])
    functions = ["tool-executor" if "tool-executor" in t else "orchestration-step" for t in tasks]
    assert functions[0] == functions[-1] == "orchestration-step"
    assert functions.count("tool-executor") == 1  # the add call, in its own function
    assert '"action":"prepare"' in tasks[0].replace(" ", "")
    assert '"action":"finalize"' in tasks[-1].replace(" ", "")


def test_an_async_run_goes_through_the_standard_machine(
    local: LocalServer, model: ScriptedOpenAIServer
):
    model.push(Reply("Later, but here."))

    accepted = httpx.post(
        f"{local.url}/dev/v1/agents/helper/run?mode=async",  # the deployed stage's path
        json={"query": "take your time"},
        headers=KEY_HEADERS,
        timeout=60,
    )

    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    deadline = time.monotonic() + 90
    while True:
        run = httpx.get(f"{local.url}/v1/runs/{run_id}", headers=KEY_HEADERS, timeout=30)
        assert run.status_code == 200, run.text
        if run.json()["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (run.json()["status"], run.json()["answer"]) == ("succeeded", "Later, but here.")
    described = local.client("stepfunctions").describe_execution(
        executionArn=machine_arn("standard").replace(":stateMachine:", ":execution:") + f":{run_id}"
    )
    assert described["status"] == "SUCCEEDED"
    assert len(invoked_functions(local, "standard", run_id)) >= 3  # prepare, step, finalize


def test_api_gateway_answers_for_what_it_does_not_route(local: LocalServer):
    missing = httpx.put(f"{local.url}/v1/channels/whatsapp/webhook", timeout=30)
    assert missing.status_code == 403
    assert missing.json() == {"message": "Missing Authentication Token"}
    unauthorized = httpx.get(f"{local.url}/v1/agents", timeout=30)
    assert unauthorized.status_code == 401  # the api function's own answer: auth required
