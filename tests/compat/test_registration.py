"""Upstream-shaped documents posted to ``/v1/agents``: warnings in the answer, policy intact."""

from __future__ import annotations

from pathlib import Path

from tests.channels.conftest import AppFactory
from tests.compat.documents import UPSTREAM_AGENT_WARNED, billing_agent, upstream_agent, write
from tests.support.model_servers import ScriptedOpenAIServer

YAML = {"Content-Type": "application/yaml"}


async def test_a_registered_upstream_agent_gets_its_warnings_in_the_201(
    make_app: AppFactory, agents_dir: Path, client_for, openai_server: ScriptedOpenAIServer
) -> None:
    write(agents_dir, "billing.agent.yaml", billing_agent(openai_server.url))
    text = (
        upstream_agent(openai_server.url)
        .replace(
            '    - name: read_file\n      type: builtin\n      description: "Read a note from the'
            ' agents folder"\n      permissions: [read]\n',
            "    - name: now\n      type: builtin\n      permissions: [read]\n",
        )
        .replace("name: now", "name: current_time")
    )
    client = client_for(make_app())

    created = await client.post("/v1/agents", content=text, headers=YAML)

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "concierge" and body["status"] == "registered"
    assert sorted(w["field"] for w in body["warnings"]) == UPSTREAM_AGENT_WARNED
    assert all(w["message"].startswith("upstream field") for w in body["warnings"])
    assert all("file" not in w for w in body["warnings"])
    updated = await client.put("/v1/agents/concierge", content=text, headers=YAML)
    assert updated.status_code == 200 and len(updated.json()["warnings"]) == len(
        UPSTREAM_AGENT_WARNED
    )


async def test_upstream_spellings_do_not_get_around_the_registration_policy(
    make_app: AppFactory, agents_dir: Path, client_for, openai_server: ScriptedOpenAIServer
) -> None:
    write(agents_dir, "billing.agent.yaml", billing_agent(openai_server.url))
    client = client_for(make_app())
    base = upstream_agent(openai_server.url)
    metadata_host = base.replace(openai_server.url, "http://169.254.169.254/latest")
    no_root = base  # read_file with no root: the policy lists no file roots
    server_key = base.replace("provider: litellm", "provider: openai").replace(
        f'      endpoint: "{openai_server.url}"\n', ""
    )

    refused_host = await client.post("/v1/agents", content=metadata_host, headers=YAML)
    refused_file = await client.post("/v1/agents", content=no_root, headers=YAML)
    refused_key = await client.post("/v1/agents", content=server_key, headers=YAML)

    assert refused_host.status_code == 422, refused_host.text
    issues = refused_host.json()["error"]["issues"]
    assert any(i["field"] == "spec.model.primary.endpoint" for i in issues)
    assert refused_file.status_code == 422, refused_file.text
    assert "read_file" in refused_file.text
    assert refused_key.status_code == 422, refused_key.text
    [key_issue] = [
        i
        for i in refused_key.json()["error"]["issues"]
        if i["field"] == "spec.model.primary.provider"
    ]
    assert "provider 'openai' calls with the server's OPENAI_API_KEY" in key_issue["message"]
    assert (await client.get("/v1/agents/concierge")).status_code == 404
