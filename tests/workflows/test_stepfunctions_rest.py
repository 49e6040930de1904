"""The REST routes as the API Lambda answers them with the workflow machine configured
(``ASTROMESH_SFN_WORKFLOW_ARN``): a run starts an execution, suspends at its approval (a
task token), the server restarts, approve sends the token's success and the run is read
back complete; a wait until resumed is resumed the same way. Task tokens never leave the
server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from astromesh.channels import ServerSettings, create_app
from astromesh.runtime import AgentRuntime
from astromesh.stores.sqlite import SQLiteBackend
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.stepfunctions import REGION, LocalStepFunctions
from tests.workflows.documents import steps

REVIEWED = steps(
    """    - name: draft
      agent: writer
    - name: review
      approval:
        prompt: "Send {{ steps.draft.output }}?"
        approver: ana
    - name: hold
      wait: {}
    - name: send
      agent: writer
      input: "send {{ steps.hold.output.note }}"
""",
    name="reviewed",
)


@pytest.fixture
async def deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Path, SQLiteBackend, ScriptedOpenAIServer, LocalStepFunctions]]:
    agents_dir, db = tmp_path / "agents", tmp_path / "state.db"
    for name, value in {
        "ASTROMESH_AGENTS_DIR": str(agents_dir),
        "ASTROMESH_STATE_BACKEND": "sqlite",
        "ASTROMESH_STATE_PATH": str(db),
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    state = SQLiteBackend(db)
    with ScriptedOpenAIServer() as server, LocalStepFunctions() as sfn:
        write_agent(agents_dir, "writer", model=primary(server.url))
        (agents_dir / "reviewed.workflow.yaml").write_text(REVIEWED)
        yield agents_dir, state, server, sfn
    await state.close()


class Server:
    """One API process (as a Lambda container runs it); closed to "restart" it."""

    def __init__(self, agents_dir: Path, state: SQLiteBackend, sfn: LocalStepFunctions) -> None:
        self.runtime = AgentRuntime(agents_dir, env={}, state=state)
        settings = ServerSettings(background_runs=False, workflow_machine_arn=sfn.workflow_arn)
        self.app = create_app(self.runtime, settings)

    async def __aenter__(self) -> httpx.AsyncClient:
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://test"
        )
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self.app.state.services.aclose()
        await self.runtime.close()


async def test_a_workflow_over_rest_waits_on_the_machine_across_a_restart(deployment):
    agents_dir, state, server, sfn = deployment
    server.push(Reply("the draft"), Reply("sent it"))

    async with Server(agents_dir, state, sfn) as client:
        started = await client.post("/v1/workflows/reviewed/run", json={"query": "ACME"})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        assert started.json()["status"] == "suspended"
        assert "task_token" not in started.text
        record = (await client.get(f"/v1/workflows/runs/{run_id}")).json()
        assert record["state"] == "awaiting_approval"
        assert record["pending_approval"]["prompt"] == "Send the draft?"
        assert "task_token" not in str(record)

    async with Server(agents_dir, state, sfn) as client:  # a new process: nothing in memory
        approvals = (await client.get("/v1/workflows/approvals?approver=ana")).json()
        assert [a["run_id"] for a in approvals["approvals"]] == [run_id]
        decided = await client.post(
            f"/v1/workflows/runs/{run_id}/approve", json={"approver": "ana", "comment": "go"}
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["state"] == "waiting"  # at the wait until resumed
        early = await client.post(f"/v1/workflows/runs/{run_id}/approve", json={"approver": "ana"})
        assert early.status_code == 409

        # the machine stores the wait's token a moment after the approval is answered; until
        # then a resume is a 409 that says to retry, which is what a client does
        for _ in range(100):
            resumed = await client.post(
                f"/v1/workflows/runs/{run_id}/resume", json={"payload": {"note": "now"}}
            )
            if resumed.status_code != 409 or "retry in a moment" not in resumed.text:
                break
            await asyncio.sleep(0.1)
        assert resumed.status_code == 200, resumed.text
        record = (await client.get(f"/v1/workflows/runs/{run_id}")).json()

    assert record["state"] == "completed"
    assert record["steps"]["review"]["output"] == {
        "approved": True,
        "approver": "ana",
        "comment": "go",
    }
    assert record["steps"]["hold"]["output"] == {"note": "now"}
    assert record["steps"]["send"]["output"] == "sent it"
    # The last task wrote the record; the execution ends a moment after that task returns.
    executions = sfn.client.list_executions(stateMachineArn=sfn.workflow_arn)["executions"]
    assert [e["name"] for e in executions] == [run_id]
    ended = await asyncio.to_thread(sfn.wait, executions[0]["executionArn"], 30.0)
    assert ended["status"] == "SUCCEEDED"
