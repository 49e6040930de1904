"""An approval's ``notify.webhook``: the question is POSTed once (signed, with the routes
that decide it), recorded on the pending approval, not sent again after a restart; a posted
workflow's webhook is held to the registration policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from astromesh.auth import Role
from astromesh.tools.webhook import verify_signature
from tests.channels.conftest import keys_of
from tests.support.agents import primary, write_agent
from tests.support.http_receivers import Canned, ScriptedHTTPServer
from tests.support.model_servers import Reply

SECRET = "approvals-shared-secret"


def workflow(notify: dict) -> dict:
    return {
        "apiVersion": "astromesh/v1",
        "kind": "Workflow",
        "metadata": {"name": "outreach"},
        "spec": {
            "steps": [
                {"name": "draft", "agent": "writer", "input": "Write to {{ trigger.query }}"},
                {
                    "name": "review",
                    "approval": {
                        "prompt": "Send this? {{ steps.draft.output }}",
                        "approver": "ana",
                        "timeout_seconds": 3600,
                        "notify": notify,
                    },
                },
                {"name": "done", "tool": "current_time"},
            ]
        },
    }


@pytest.fixture
def receiver():
    with ScriptedHTTPServer([Canned(200, {"ok": True})]) as server:
        yield server


async def test_a_suspended_run_notifies_its_webhook_once_signed_and_recorded(
    tmp_path: Path, agents_dir, make_app, client_for, openai_server, receiver
):
    write_agent(agents_dir, "writer", model=primary(openai_server.url))
    notify = {
        "webhook": f"{receiver.url}/approvals",
        "secret_env": "APPROVAL_SECRET",
        "allow_private_network": True,
    }
    (agents_dir / "outreach.workflow.yaml").write_text(yaml.safe_dump(workflow(notify)))
    env = {
        "ASTROMESH_STATE_PATH": str(tmp_path / "state.db"),
        "APPROVAL_SECRET": SECRET,
        "ASTROMESH_PUBLIC_URL": "https://agents.example.com/",
    }
    openai_server.push(Reply("Hello ACME"))
    client = client_for(make_app(env=env))

    started = await client.post("/v1/workflows/outreach/run", json={"query": "ACME"})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    receiver.wait_for(1)
    [sent] = receiver.requests
    record = (await client.get(f"/v1/workflows/runs/{run_id}")).json()
    await make_app.close()
    # a restart carries the suspended run on; it is not announced again
    client = client_for(make_app(env=env))
    approvals = (await client.get("/v1/workflows/approvals")).json()["approvals"]
    decided = await client.post(f"/v1/workflows/runs/{run_id}/approve", json={"approver": "ana"})

    assert (sent.method, sent.path) == ("POST", "/approvals")
    body = sent.json()
    assert body["event"] == "workflow.approval_requested"
    assert (body["run_id"], body["step"], body["approver"]) == (run_id, "review", "ana")
    assert body["prompt"] == "Send this? Hello ACME"
    route = f"https://agents.example.com/v1/workflows/runs/{run_id}"
    assert body["approve"] == {"method": "POST", "url": f"{route}/approve"}
    assert body["reject"] == {"method": "POST", "url": f"{route}/reject"}
    assert body["expires_at"] is not None
    assert verify_signature(
        SECRET,
        timestamp=sent.headers["x-astromesh-timestamp"],
        signature=sent.headers["x-astromesh-signature"],
        payload=sent.body,
    )
    assert sent.headers["x-astromesh-delivery"].startswith(f"{run_id}:review:")
    pending = record["pending_approval"]
    assert pending["notification"] == "delivered" and pending["notified_at"] is not None
    assert [a["run_id"] for a in approvals] == [run_id]
    assert decided.status_code == 200, decided.text
    assert len(receiver.requests) == 1


async def test_a_failed_delivery_is_recorded_and_the_approval_still_waits(
    agents_dir, make_app, client_for, openai_server, closed_port_url
):
    write_agent(agents_dir, "writer", model=primary(openai_server.url))
    notify = {"webhook": f"{closed_port_url}/hook", "allow_private_network": True}
    (agents_dir / "outreach.workflow.yaml").write_text(yaml.safe_dump(workflow(notify)))
    openai_server.push(Reply("Hello"))
    client = client_for(make_app())

    started = await client.post("/v1/workflows/outreach/run", json={"query": "ACME"})
    run_id = started.json()["run_id"]
    record = (await client.get(f"/v1/workflows/runs/{run_id}")).json()

    assert record["state"] == "awaiting_approval"
    assert record["pending_approval"]["notification"].startswith("failed: ")
    decided = await client.post(f"/v1/workflows/runs/{run_id}/approve", json={"approver": "ana"})
    assert decided.json()["status"] == "completed"


@pytest.mark.parametrize(
    ("notify", "field", "message"),
    [
        (
            {"webhook": "http://169.254.169.254/latest/meta-data/"},
            "spec.steps[1].approval.notify.webhook",
            "169.254.169.254",
        ),
        (
            {"webhook": "http://127.0.0.1:9/hook", "allow_private_network": True},
            "spec.steps[1].approval.notify.allow_private_network",
            "may not notify private networks",
        ),
        (
            {"webhook": "https://hooks.example.com/a", "secret_env": "AWS_SECRET_ACCESS_KEY"},
            "spec.steps[1].approval.notify.secret_env",
            "would sign with a server secret",
        ),
        (
            {"webhook": "file:///etc/passwd"},
            "spec.steps[1].approval.notify.webhook",
            "must start with http:// or https://",
        ),
    ],
)
async def test_a_posted_workflows_webhook_is_held_to_the_policy(
    notify, field, message, agents_dir, make_app, client_for, openai_server
):
    write_agent(agents_dir, "writer", model=primary(openai_server.url))
    app = make_app(auth="required")
    keys = await keys_of(app)
    developer = {"x-api-key": (await keys.issue("acme", ["*"], role=Role.DEVELOPER)).plaintext}
    client = client_for(app)

    response = await client.post(
        "/v1/workflows/register", json={"workflow": workflow(notify)}, headers=developer
    )

    assert response.status_code == 422, response.text
    issue = response.json()["error"]["issues"][0]
    assert issue["field"] == field and message in issue["message"], issue
    assert issue["line"] is not None
    assert "outreach" not in json.dumps(
        (await client.get("/v1/workflows", headers=developer)).json()
    )
