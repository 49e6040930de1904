"""Workflows over REST against the real app: runs, approvals across restarts, tenancy,
roles and hostile registrations. Models are the scripted server on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from astromesh.auth import Role
from tests.channels.conftest import keys_of, wait_for
from tests.support.agents import agent_document, primary, write_agent
from tests.support.model_servers import Reply
from tests.workflows.conftest import write_lead_agents

APPROVAL_WORKFLOW = {
    "apiVersion": "astromesh/v1",
    "kind": "Workflow",
    "metadata": {"name": "outreach"},
    "spec": {
        "description": "Draft, ask a person, then send",
        "steps": [
            {"name": "draft", "agent": "writer", "input": "Write to {{ trigger.query }}"},
            {
                "name": "review",
                "approval": {
                    "prompt": "Send this? {{ steps.draft.output }}",
                    "approver": "ana",
                    "timeout_seconds": 86400,
                    "on_reject": "discard",
                },
            },
            {
                "name": "send",
                "tool": "cache_store",
                "arguments": {"action": "set", "key": "sent", "value": "{{ steps.draft.output }}"},
            },
            {"name": "end", "switch": [{"default": True, "goto": "done"}]},
            {"name": "discard", "tool": "current_time"},
            {"name": "done", "tool": "current_time"},
        ],
    },
}


async def test_upstream_example_runs_sync_with_child_runs(
    agents_dir, make_app, client_for, openai_server
):
    write_lead_agents(agents_dir, openai_server.url)
    openai_server.push(
        Reply("ACME builds rockets."), Reply('{"score": 9}'), Reply("Dear ACME, ...")
    )
    client = client_for(make_app())

    got = await client.get("/v1/workflows")
    assert got.status_code == 200, got.text
    listed = got.json()["workflows"]
    assert [w["name"] for w in listed] == ["lead-qualification"]
    described = (await client.get("/v1/workflows/lead-qualification")).json()
    assert described["steps"][2] == {"name": "decide", "type": "switch"}
    assert described["trigger"] == "api" and described["timeout_seconds"] == 300

    response = await client.post(
        "/v1/workflows/lead-qualification/run", json={"trigger": {"query": "ACME", "id": "7"}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert body["steps"]["qualify"]["output"] == '{"score": 9}'
    assert body["steps"]["decide"]["output"] == {"goto": "notify"}
    assert body["steps"]["notify"]["output"] == "Dear ACME, ..."
    assert body["steps"]["log-and-skip"]["status"] == "skipped"
    # each agent step is a child run with its own record (usage counted as for any run)
    assert openai_server.requests[1]["messages"][-1]["content"] == "ACME builds rockets."
    record = (await client.get(f"/v1/workflows/runs/{body['run_id']}")).json()
    child = record["steps"]["qualify"]["child_run_id"]
    run = (await client.get(f"/v1/runs/{child}")).json()
    assert run["agent"] == "sales-qualifier" and run["data"] == {"score": 9}
    assert record["steps"]["qualify"]["data"] == {"score": 9}


async def test_a_low_score_logs_and_skips_and_a_failing_step_retries(
    agents_dir, make_app, client_for, openai_server
):
    write_lead_agents(agents_dir, openai_server.url)
    openai_server.push(
        Reply("ACME sells soap."),
        Reply("no idea"),  # qualify, attempt 1: not the schema's JSON,
        Reply("still no idea"),  # nor after its one repair: the child run fails
        Reply('{"score": 2}'),  # attempt 2
    )
    client = client_for(make_app())
    body = (
        await client.post(
            "/v1/workflows/lead-qualification/run", json={"trigger": {"query": "A", "id": "9"}}
        )
    ).json()
    assert body["status"] == "completed", body
    record = (await client.get(f"/v1/workflows/runs/{body['run_id']}")).json()
    assert record["steps"]["qualify"]["attempts"] == 2
    assert record["steps"]["notify"]["status"] == "pending"
    assert record["steps"]["log-and-skip"]["output"] == {"key": "skipped_9", "stored": True}


async def _register(client, headers=None, workflow=APPROVAL_WORKFLOW, **extra):
    return await client.post(
        "/v1/workflows/register", json={"workflow": workflow, **extra}, headers=headers or {}
    )


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_approval_survives_a_restart_over_rest(
    store, request, tmp_path: Path, agents_dir, make_app, client_for, openai_server
):
    """Register over the API, run (202, suspended), restart the server on the same store,
    approve, read it back completed."""
    if store == "sqlite":
        env = {"ASTROMESH_STATE_PATH": str(tmp_path / "state.db")}
    else:
        env = {
            "ASTROMESH_STATE_BACKEND": "postgres",
            "ASTROMESH_POSTGRES_DSN": request.getfixturevalue("postgres_schema"),
        }
    writer = agent_document("writer", model=primary(openai_server.url))
    openai_server.push(Reply("Hello ACME"))
    first = make_app(env=env)
    client = client_for(first)
    registered = await _register(client, agents=[writer])
    assert registered.status_code == 201, registered.text
    assert registered.json()["workflow_name"] == "outreach"

    started = await client.post("/v1/workflows/outreach/run", json={"query": "ACME"})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    assert started.json()["status"] == "suspended"
    record = (await client.get(f"/v1/workflows/runs/{run_id}")).json()
    assert record["state"] == "awaiting_approval"
    assert record["pending_approval"]["prompt"] == "Send this? Hello ACME"
    assert record["pending_approval"]["approver"] == "ana"
    await make_app.close()  # the server stops: nothing of the run is in memory any more

    second = make_app(env=env)
    client = client_for(second)
    approvals = (await client.get("/v1/workflows/approvals?approver=ana")).json()["approvals"]
    assert [(a["run_id"], a["step_name"]) for a in approvals] == [(run_id, "review")]
    assert (await client.get("/v1/workflows/approvals?approver=bo")).json()["approvals"] == []
    decided = await client.post(
        f"/v1/workflows/runs/{run_id}/approve", json={"approver": "ana", "comment": "go"}
    )
    assert decided.status_code == 200, decided.text
    assert decided.json() == {"run_id": run_id, "status": "completed", "state": "completed"}
    record = (await client.get(f"/v1/workflows/runs/{run_id}")).json()
    assert record["status"] == "completed" and record["pending_approval"] is None
    assert record["steps"]["review"]["output"] == {
        "approved": True,
        "approver": "ana",
        "comment": "go",
    }
    assert record["steps"]["send"]["output"] == {"key": "sent", "stored": True}
    assert record["steps"]["discard"]["status"] == "pending"
    again = await client.post(f"/v1/workflows/runs/{run_id}/approve", json={"approver": "ana"})
    assert again.status_code == 409
    assert "is completed, not awaiting approval" in again.json()["detail"]


async def test_reject_follows_on_reject(agents_dir, make_app, client_for, openai_server):
    write_agent(agents_dir, "writer", model=primary(openai_server.url))
    openai_server.push(Reply("Hello"))
    client = client_for(make_app())
    assert (await _register(client)).status_code == 201
    run_id = (await client.post("/v1/workflows/outreach/run", json={"query": "x"})).json()["run_id"]
    decided = await client.post(
        f"/v1/workflows/runs/{run_id}/reject", json={"approver": "ana", "comment": "too pushy"}
    )
    assert decided.json()["status"] == "completed"
    record = (await client.get(f"/v1/workflows/runs/{run_id}")).json()
    assert record["steps"]["review"]["status"] == "rejected"
    assert record["steps"]["send"]["status"] == "pending"
    assert record["steps"]["discard"]["status"] == "succeeded"


async def test_an_approval_that_expires_follows_on_reject(
    agents_dir, make_app, client_for, openai_server
):
    write_agent(agents_dir, "writer", model=primary(openai_server.url))
    openai_server.push(Reply("Hello"))
    client = client_for(make_app())
    quick = json.loads(json.dumps(APPROVAL_WORKFLOW))
    quick["spec"]["steps"][1]["approval"]["timeout_seconds"] = 0.2
    assert (await _register(client, workflow=quick)).status_code == 201
    run_id = (await client.post("/v1/workflows/outreach/run", json={"query": "x"})).json()["run_id"]

    async def finished():
        record = (await client.get(f"/v1/workflows/runs/{run_id}")).json()
        return record if record["state"] == "completed" else None

    record = await wait_for(finished)
    assert record["steps"]["review"]["status"] == "timed_out"
    assert record["steps"]["discard"]["status"] == "succeeded"


async def test_roles_and_tenants_on_approvals(agents_dir, make_app, client_for, openai_server):
    write_agent(agents_dir, "writer", model=primary(openai_server.url))
    openai_server.push(Reply("Hello"))
    app = make_app(auth="required")
    keys = await keys_of(app)
    dev = {"x-api-key": (await keys.issue("acme", ["*"], role=Role.DEVELOPER)).plaintext}
    user = {"x-api-key": (await keys.issue("acme", ["*"], role=Role.USER)).plaintext}
    other = {"x-api-key": (await keys.issue("globex", ["*"], role=Role.DEVELOPER)).plaintext}
    client = client_for(app)
    assert (await _register(client, user)).status_code == 403  # registering needs developer
    assert (await _register(client, dev)).status_code == 201
    started = await client.post("/v1/workflows/outreach/run", json={"query": "x"}, headers=user)
    run_id = started.json()["run_id"]

    # another tenant neither sees the workflow nor the run
    assert (await client.get("/v1/workflows/outreach", headers=other)).status_code == 404
    assert (await client.get(f"/v1/workflows/runs/{run_id}", headers=other)).status_code == 404
    approve = f"/v1/workflows/runs/{run_id}/approve"
    assert (await client.post(approve, json={"approver": "ana"}, headers=other)).status_code == 404
    assert (await client.get("/v1/workflows/approvals", headers=other)).json()["approvals"] == []
    # the key that runs it (user) may not approve it; a developer must approve as 'ana'
    refused = await client.post(approve, json={"approver": "ana"}, headers=user)
    assert refused.status_code == 403 and "'developer'" in refused.json()["detail"]
    wrong = await client.post(approve, json={"approver": "bo"}, headers=dev)
    assert wrong.status_code == 403 and "asks 'ana'" in wrong.json()["detail"]
    missing = await client.post(approve, json={}, headers=dev)
    assert missing.status_code == 422
    assert (await client.post(approve, json={"approver": "ana"}, headers=dev)).status_code == 200


BOMB = "{% for a in range(9999) %}{% for b in range(9999) %}x{% endfor %}{% endfor %}"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            # send -> end -> done -> send: round and round with nobody asked
            lambda s: s.__setitem__(
                5, {"name": "done", "switch": [{"default": True, "goto": "send"}]}
            ),
            "spec.steps[5].switch[0].goto",
            "form a loop with no wait or approval",
        ),
        (
            lambda s: s[0].update(input=BOMB),
            "spec.steps[0].input",
            "template",
        ),
        (
            lambda s: s[2].update(tool="read_file", arguments={"path": "/etc/passwd"}),
            "spec.steps[2].tool",
            "builtin 'read_file' is not allowed",
        ),
        (
            lambda s: s[0].update(agent="globex-secret"),
            "spec.steps[0].agent",
            "unknown agent 'globex-secret'",
        ),
        (
            lambda s: s[1]["approval"].update(on_reject="nowhere"),
            "spec.steps[1].approval.on_reject",
            "unknown step 'nowhere'",
        ),
    ],
)
async def test_hostile_registrations_are_4xx_naming_the_field(
    change, field, message, agents_dir, make_app, client_for, openai_server
):
    write_agent(agents_dir, "writer", model=primary(openai_server.url))
    app = make_app(auth="required")
    keys = await keys_of(app)
    acme = {"x-api-key": (await keys.issue("acme", ["*"], role=Role.DEVELOPER)).plaintext}
    globex = {"x-api-key": (await keys.issue("globex", ["*"], role=Role.DEVELOPER)).plaintext}
    client = client_for(app)
    secret = agent_document("globex-secret", model=primary(openai_server.url))
    assert (await client.post("/v1/agents", json=secret, headers=globex)).status_code == 201

    workflow = json.loads(json.dumps(APPROVAL_WORKFLOW))
    change(workflow["spec"]["steps"])
    response = await _register(client, acme, workflow=workflow)
    assert response.status_code == 422, response.text
    issues = response.json()["error"]["issues"]
    assert issues[0]["field"] == field, issues
    assert message in issues[0]["message"]
    assert issues[0]["line"] is not None
    assert (await client.get("/v1/workflows/outreach", headers=acme)).status_code == 404


async def test_a_key_limited_to_some_agents_cannot_run_a_workflow_of_others(
    agents_dir, make_app, client_for, openai_server
):
    write_lead_agents(agents_dir, openai_server.url)
    app = make_app(auth="required")
    narrow = (await (await keys_of(app)).issue("acme", ["web-researcher"])).plaintext
    client = client_for(app)
    response = await client.post(
        "/v1/workflows/lead-qualification/run", json={"query": "x"}, headers={"x-api-key": narrow}
    )
    assert response.status_code == 403
    assert "sales-qualifier" in response.json()["detail"]


async def test_the_route_words_are_not_workflow_names(make_app, client_for):
    client = client_for(make_app())
    got = await client.get("/v1/workflows/register")
    assert got.status_code == 405 and got.headers["allow"] == "POST"
    workflow = json.loads(json.dumps(APPROVAL_WORKFLOW))
    workflow["metadata"]["name"] = "approvals"
    refused = await _register(client, workflow=workflow)
    assert refused.status_code == 422
    assert refused.json()["error"]["issues"][0]["field"] == "metadata.name"
