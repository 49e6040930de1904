"""Every sample in events/ replayed with `astromesh local invoke` against the running
emulation, in each function's own order, with the world each sample assumes made first: the
step samples' run in the state store, the ingestion samples' object in S3. The sample key is
seeded by `astromesh local` itself, and the channel secrets the samples were signed with are
in its emulated Secrets Manager."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from astromesh.cli import app
from astromesh.config.workflow import WorkflowDocument
from astromesh.runs.state import RunState, RunStatus
from astromesh.stores.factory import open_backend
from astromesh.workflows.interpreter import start_run
from astromesh.workflows.store import open_workflow_store
from tests.support.local_server import REPO, LocalServer, command_env
from tests.support.messaging import PlatformServer
from tests.support.model_servers import Reply, ScriptedOpenAIServer

EVENTS = REPO / "events"
RUN_ID = json.loads((EVENTS / "orchestration_step" / "prepare.json").read_text())["run_id"]
WORKFLOW_RUN_ID = json.loads((EVENTS / "workflow_step" / "advance.json").read_text())["run_id"]
CHILD_RUN_ID = json.loads((EVENTS / "workflow_step" / "apply.json").read_text())["next"][
    "child_run_id"
]
SAMPLE_WORKFLOW = {
    "apiVersion": "astromesh/v1",
    "kind": "Workflow",
    "metadata": {"name": "sample-review"},
    "spec": {
        "steps": [
            {"name": "research", "agent": "helper", "input": "{{ trigger.query }}"},
            {"name": "review", "approval": {"prompt": "Use {{ steps.research.output }}?"}},
        ]
    },
}
"""The workflow the workflow_step samples' run runs: the machine has started ``research`` as
the child run the apply sample names (stored succeeded), so apply records it, advance answers
the approval, await_approval stores the token, and fail ends the run."""
Check = Callable[[Any], None]


def status(code: int, error: str | None = None) -> Check:
    """An API Gateway proxy response with ``code`` (and the error code in its body)."""

    def check(answer: Any) -> None:
        assert answer["statusCode"] == code, answer
        if error is not None:
            assert json.loads(answer["body"])["error"]["code"] == error, answer

    return check


def accepted(count: int) -> Check:
    def check(answer: Any) -> None:
        assert answer["statusCode"] == 200, answer
        assert json.loads(answer["body"]) == {"status": "ok", "accepted": count}

    return check


def equals(expected: Any) -> Check:
    def check(answer: Any) -> None:
        assert answer == expected

    return check


def ingested(status_: str) -> Check:
    def check(answer: Any) -> None:
        [result] = answer["results"]
        assert (result["pipeline"], result["status"]) == ("local-faq", status_), answer
        assert result["chunks"] >= 1

    return check


def challenge(answer: Any) -> None:
    assert (answer["statusCode"], answer["body"]) == (200, "1158201444"), answer


# (function, sample) in the order each function meets them -> what its answer must be
SAMPLES: list[tuple[str, str, Check]] = [
    ("api", "health", status(200)),
    ("api", "run", status(200)),
    ("api", "run_async", status(202)),  # the Standard machine exists here
    ("api", "bad_json", status(400, "bad_json")),
    ("api", "unknown_agent", status(404, "not_found")),
    ("api", "missing_key", status(401, "unauthorized")),
    ("orchestration_step", "prepare", equals({"run_id": RUN_ID})),
    ("orchestration_step", "step",
     equals({"next": "act", "actions": [{"run_id": RUN_ID, "call_id": "call_1"}]})),
    ("tool_executor", "call", equals({"call_id": "call_1", "ok": True, "child_run_id": None})),
    ("orchestration_step", "observe", equals({"run_id": RUN_ID})),
    ("orchestration_step", "step", equals({"next": "finish", "actions": []})),
    ("orchestration_step", "finalize", equals({"run_id": RUN_ID, "status": "succeeded"})),
    ("orchestration_step", "finalize_error", equals({"run_id": RUN_ID, "status": "succeeded"})),
    ("ingestion", "object_created", ingested("indexed")),
    ("ingestion", "object_removed", ingested("deleted")),
    ("whatsapp", "verify", challenge),
    ("whatsapp", "message", accepted(1)),
    ("whatsapp", "status", accepted(0)),
    ("whatsapp", "bad_signature", status(403, "forbidden")),
    ("whatsapp", "duplicate", accepted(0)),
    ("whatsapp", "media", accepted(1)),
    ("telegram", "message", accepted(1)),
    ("telegram", "duplicate", accepted(0)),
    ("telegram", "bad_secret", status(403, "forbidden")),
    ("telegram", "media", accepted(1)),
    ("telegram", "edited", accepted(0)),
    ("ws_connect", "connect", status(200)),
    ("ws_connect", "connect_bad_key", status(401)),
    ("ws_message", "run", status(202)),
    ("ws_message", "cancel", status(200)),
    ("ws_message", "bad_json", status(400)),
    ("ws_connect", "disconnect", status(200)),
    ("workflow_step", "apply", equals({"run_id": WORKFLOW_RUN_ID})),
    ("workflow_step", "advance", lambda answer: _awaits_review(answer)),
    ("workflow_step", "await_approval", equals({"run_id": WORKFLOW_RUN_ID})),
    ("workflow_step", "fail", equals({"run_id": WORKFLOW_RUN_ID})),
]  # fmt: skip


def _awaits_review(answer: Any) -> None:
    assert answer["run_id"] == WORKFLOW_RUN_ID, answer
    assert (answer["next"]["kind"], answer["next"]["step"]) == ("await_approval", "review")


async def _create_sample_run(dsn: str) -> None:
    backend = open_backend("postgres", postgres_dsn=dsn)
    await backend.open()
    try:
        await backend.runs.create(RunState(id=RUN_ID, agent="helper", namespace="tests",
                                           query="2+3?"))  # fmt: skip
        child = await backend.runs.create(
            RunState(id=CHILD_RUN_ID, agent="helper", namespace="tests", query="2+3?")
        )
        child.status, child.answer = RunStatus.SUCCEEDED, "5"
        await backend.runs.save(child)
        workflow = WorkflowDocument.model_validate(SAMPLE_WORKFLOW)
        run = start_run(workflow, {"query": "2+3?"}, run_id=WORKFLOW_RUN_ID)
        run.executor = "stepfunctions"
        await open_workflow_store(backend).create(run)
    finally:
        await backend.close()


def invoke(local: LocalServer, function: str, event: Path) -> tuple[int, Any]:
    """`astromesh local invoke` (the CLI's own command, in this process) on the server."""
    result = CliRunner().invoke(
        app, ["local", "invoke", function, "-e", str(event), "--aws-port", str(local.aws_port)]
    )
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None


def test_every_sample_event_replays_against_the_emulation(
    local: LocalServer,
    local_db: str,
    model: ScriptedOpenAIServer,
    assistant_model: ScriptedOpenAIServer,
    platform: PlatformServer,
):
    on_disk = sorted(str(p.relative_to(EVENTS)) for p in EVENTS.glob("*/*.json"))
    assert sorted({f"{f}/{s}.json" for f, s, _ in SAMPLES}) == on_disk
    asyncio.run(_create_sample_run(local_db))
    s3 = local.client("s3")
    s3.create_bucket(Bucket="astromesh-documents")
    s3.put_object(Bucket="astromesh-documents", Key="local-faq/guides/getting started.md",
                  Body=b"# Getting started\nInstall it, then run it.\n")  # fmt: skip
    model.push(Reply(tool_calls=[("add", {"a": 2, "b": 3})]), Reply("5"))
    assistant_model.push(
        Reply("An agent runtime runs agents."),  # api/run
        Reply("Later."),  # api/run_async, on the Standard machine
        Reply("Hello on WhatsApp."),  # whatsapp/message's job
        Reply("Hello on Telegram."),  # telegram/message's job
    )
    posts_before = len(platform.posts)

    for function, name, check in SAMPLES:
        code, answer = invoke(local, function, EVENTS / function / f"{name}.json")
        assert code == 0, (function, name, answer)
        check(answer)

    # the channels' jobs ran the agent and replied (two texts, two media notices)
    replies = platform.wait_for(posts_before + 4, timeout=60)[posts_before:]
    texts = sorted(p.text for p in replies)
    assert "Hello on WhatsApp." in texts and "Hello on Telegram." in texts, texts
    deadline = time.monotonic() + 60
    while assistant_model.pending and time.monotonic() < deadline:
        time.sleep(0.1)
    assert assistant_model.pending == 0 and model.pending == 0
    workflow_run = asyncio.run(_read_workflow_run(local_db))
    assert workflow_run.steps["research"].output == "5"
    assert workflow_run.status.value == "failed"
    assert workflow_run.error == "Lambda.Unknown: the function timed out"


async def _read_workflow_run(dsn: str) -> Any:
    backend = open_backend("postgres", postgres_dsn=dsn)
    await backend.open()
    try:
        return await open_workflow_store(backend).get(WORKFLOW_RUN_ID)
    finally:
        await backend.close()


def test_a_function_error_is_reported_as_lambda_does(local: LocalServer, tmp_path: Path):
    event = tmp_path / "unknown_run.json"
    event.write_text(json.dumps({"action": "prepare", "run_id": "run_" + "0" * 32}))
    code, answer = invoke(local, "orchestration_step", event)
    assert code == 1
    assert answer["errorType"] == "NotFoundError" and "not found" in answer["errorMessage"]
    assert answer["stackTrace"]


def test_invoke_as_a_command_on_the_running_emulation(local: LocalServer):
    """The console script's path: a separate process, the function named by its full name."""
    completed = subprocess.run(
        [sys.executable, "-m", "astromesh.cli", "local", "--aws-port", str(local.aws_port),
         "invoke", "astromesh-dev-api", "-e", str(EVENTS / "api" / "health.json")],
        env=command_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    answer = json.loads(completed.stdout)
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["status"] == "ok"


@pytest.mark.parametrize("function", ["nope", "api_gateway"])
def test_an_unknown_function_names_the_known_ones(local: LocalServer, function: str):
    result = CliRunner().invoke(
        app,
        ["local", "invoke", function, "-e", str(EVENTS / "api" / "health.json"),
         "--aws-port", str(local.aws_port)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "known:" in result.output and "astromesh-dev-api" in result.output
