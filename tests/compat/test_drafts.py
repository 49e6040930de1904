"""``GET /v1/agents`` lists agents that do not load as ``status: draft`` with their error.

Upstream shows them so a client sees that they exist and why they do not run; ours keeps the
admin's ``skipped`` list beside, and never shows one tenant's registered draft to another.
"""

from __future__ import annotations

from pathlib import Path

from astromesh.auth import Role
from astromesh.stores.sqlite import SQLiteBackend
from tests.channels.conftest import AppFactory
from tests.compat.documents import billing_agent, member_agent, write
from tests.support.agents import agent_document, primary, python_tool
from tests.support.model_servers import ScriptedOpenAIServer
from tests.support.tenants import caller


def write_folder(folder: Path, url: str) -> None:
    write(folder, "billing.agent.yaml", billing_agent(url))
    typo = member_agent(url, "scout", "Looks around").replace("  prompts:", "  promts:")
    write(folder, "scout.agent.yaml", typo)
    unrunnable = billing_agent(url).replace("name: billing", "name: hooked")
    unrunnable += "  tools:\n    - {name: notify, type: webhook, url: 'http://127.0.0.1:9/h'}\n"
    write(folder, "hooked.agent.yaml", unrunnable)


async def test_agents_that_do_not_load_are_listed_as_drafts_with_their_error(
    make_app: AppFactory, agents_dir: Path, client_for, openai_server: ScriptedOpenAIServer
) -> None:
    write_folder(agents_dir, openai_server.url)
    app = make_app()
    client = client_for(app)
    admin = await caller(app, client, "acme", Role.ADMIN)
    user = await caller(app, client, "acme", Role.USER)

    admin_view = (await admin.get("/v1/agents")).json()
    user_view = (await user.get("/v1/agents")).json()

    for view in (admin_view, user_view):
        by_name = {a["name"]: a for a in view["agents"]}
        assert sorted(by_name) == ["billing", "hooked", "scout"]
        assert (
            by_name["billing"]["status"] == "deployed" and by_name["billing"].get("error") is None
        )
        scout, hooked = by_name["scout"], by_name["hooked"]
        assert scout["status"] == "draft" and hooked["status"] == "draft"
        assert scout["error"].startswith("line 10: spec.promts: unknown field 'promts'")
        assert "did you mean 'prompts'?" in scout["error"]
        assert hooked["error"].startswith("line ") and "127.0.0.1" in hooked["error"]
        assert hooked["pattern"] == "react" and scout["pattern"] is None
        assert str(agents_dir) not in str(view["agents"])  # no server paths
    assert [s["name"] for s in admin_view["skipped"]] == ["hooked"]  # as before, admins only
    assert user_view["skipped"] == []
    refused = await user.post("/v1/agents/scout/run", json={"query": "hi"})
    assert refused.status_code == 404 and openai_server.requests == []
    # asked for by name, a draft is answered as listed (upstream answers what it could not
    # deploy), not 404 for an agent that is there
    described = await user.get("/v1/agents/scout")
    assert described.status_code == 200
    assert described.json() == {a["name"]: a for a in user_view["agents"]}["scout"]
    assert (await user.get("/v1/agents/nobody")).status_code == 404


async def test_a_registered_draft_is_listed_to_its_tenant_only(
    make_app: AppFactory,
    agents_dir: Path,
    client_for,
    openai_server: ScriptedOpenAIServer,
    tmp_path: Path,
) -> None:
    # two apps over one SQLite file: the same registry, before and after a policy change
    first = make_app(state=SQLiteBackend(tmp_path / "state.db"))
    client = client_for(first)
    acme = await caller(first, client, "acme")
    document = agent_document(
        "private-helper", model=primary(openai_server.url), tools=[python_tool("add", "add")]
    )
    assert (await acme.post("/v1/agents", json=document)).status_code == 201
    # the operator tightens the policy: python tools are no longer granted
    stricter = make_app(
        state=SQLiteBackend(tmp_path / "state.db"),
        env={
            "ASTROMESH_REGISTRATION_TOOL_TYPES": "builtin,webhook,rag,agent,client",
            "ASTROMESH_REGISTRATION_MODEL_HOSTS": "127.0.0.1",
        },
    )
    later = client_for(stricter)
    acme_later = await caller(stricter, later, "acme")
    globex = await caller(stricter, later, "globex")

    acme_view = (await acme_later.get("/v1/agents")).json()["agents"]
    globex_view = (await globex.get("/v1/agents")).json()["agents"]

    [draft] = [a for a in acme_view if a["name"] == "private-helper"]
    assert draft["status"] == "draft" and draft["origin"] == "registered"
    assert "python" in draft["error"] and draft["tenant"] == "acme"
    assert "private-helper" not in str(globex_view)
    described = await acme_later.get("/v1/agents/private-helper")
    assert described.json().get("status") == "draft", described.text
    assert (await globex.get("/v1/agents/private-helper")).status_code == 404
