"""``kind: AgentTemplate``: loaded from the agents folder, listed, rendered into agents that run."""

from __future__ import annotations

from pathlib import Path

import yaml

from astromesh.auth import Role
from astromesh.config import load_path
from astromesh.runs.state import RunStatus
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from tests.channels.conftest import AppFactory
from tests.compat.documents import TEMPLATE, write
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.tenants import caller
from tests.test_cli import astromesh


def test_a_template_in_the_agents_folder_loads_and_renders(tmp_path: Path) -> None:
    write(tmp_path / "templates", "front-desk.template.yaml", TEMPLATE)

    result = load_path(tmp_path, env={})

    assert result.ok, result.error_report()
    assert list(result.templates) == ["front-desk"] and result.agents == {}
    template = result.templates["front-desk"]
    agent = template.render({"hotel_name": "Hotel Él Sol", "checkout_time": "12:00"})
    assert agent["metadata"]["name"] == "hotel-él-sol-desk"
    system = agent["spec"]["prompts"]["system"]
    # declared blanks are filled; the agent's own Jinja is left for run time
    assert system.startswith("You are {{ agent.display_name }} at Hotel Él Sol.")
    assert "Checkout is at 12:00." in system


def test_a_template_that_renders_an_invalid_agent_is_an_error_on_its_line(
    tmp_path: Path,
) -> None:
    broken = TEMPLATE.replace("pattern: react", "pattern: reactive")
    path = write(tmp_path, "front-desk.template.yaml", broken)

    result = load_path(path, env={})

    [issue] = result.errors
    assert issue.field == "template.agent_config.spec.orchestration.pattern"
    assert issue.line == broken.splitlines().index("        pattern: reactive") + 1
    assert "the agent it renders (with sample values) is not valid" in issue.message
    assert "did you mean 'react'?" in issue.message and result.templates == {}


async def test_templates_are_listed_described_and_rendered_over_rest(
    make_app: AppFactory, agents_dir: Path, client_for
) -> None:
    write(agents_dir / "templates", "front-desk.template.yaml", TEMPLATE)
    app = make_app()
    client = client_for(app)
    user = await caller(app, client, "acme", Role.USER)

    listed = await user.get("/v1/templates")
    slashed = await user.get("/v1/templates/")
    described = await user.get("/v1/templates/front-desk")
    unknown = await user.get("/v1/templates/back-desk")
    rendered = await user.post(
        "/v1/templates/front-desk/render", json={"variables": {"hotel_name": "Casa Azul"}}
    )
    missing = await user.post("/v1/templates/front-desk/render", json={"variables": {}})
    stranger = await user.post(
        "/v1/templates/front-desk/render", json={"variables": {"hotel_name": "x", "pool": "y"}}
    )

    assert listed.status_code == 200 and slashed.json() == listed.json()
    assert listed.json() == [
        {
            "name": "front-desk",
            "version": "1.0.0",
            "category": "hospitality",
            "tags": ["hotel", "concierge"],
            "display_name": "Front Desk",
            "description": "Answers guests for a hotel",
            "recommended_channels": [
                {"channel": "whatsapp", "reason": "Guests write from their phones"}
            ],
        }
    ]
    detail = described.json()
    assert [v["key"] for v in detail["variables"]] == [
        "hotel_name",
        "model_endpoint",
        "checkout_time",
    ]
    assert detail["agent_config"]["metadata"]["name"] == "{{hotel_name|slugify}}-desk"
    assert unknown.status_code == 404 and "front-desk" in unknown.json()["error"]["message"]
    assert rendered.status_code == 200, rendered.text
    assert rendered.json()["agent"]["metadata"]["name"] == "casa-azul-desk"
    assert [w["field"] for w in rendered.json()["warnings"]] == []
    assert missing.status_code == 422 and "'hotel_name'" in missing.json()["error"]["message"]
    assert stranger.status_code == 422 and "'pool'" in stranger.json()["error"]["message"]


async def test_values_are_text_not_code(make_app: AppFactory, agents_dir: Path, client_for) -> None:
    """A value that is a template bomb lands in the prompt as a template, which the prompt
    sandbox refuses at validation: a 422, not a hang; a value that slugifies to no name is a
    422 naming metadata.name."""
    write(agents_dir, "front-desk.template.yaml", TEMPLATE)
    client = client_for(make_app())

    bomb = await client.post(
        "/v1/templates/front-desk/render",
        json={"variables": {"hotel_name": "x", "checkout_time": "{{ 9**(9**9) }}"}},
    )
    bad_name = await client.post(
        "/v1/templates/front-desk/render", json={"variables": {"hotel_name": "!!!"}}
    )
    traversal = await client.post(
        "/v1/templates/front-desk/render", json={"variables": {"hotel_name": "../../etc"}}
    )

    assert bomb.status_code == 422, bomb.text
    assert bomb.json()["error"]["issues"][0]["field"] == "spec.prompts.system"
    assert bad_name.status_code == 422, bad_name.text
    assert bad_name.json()["error"]["issues"][0]["field"] == "metadata.name"
    assert traversal.json()["agent"]["metadata"]["name"] == "etc-desk"  # slugify keeps a name


async def test_new_agent_from_a_template_writes_an_agent_that_validates_and_runs(
    tmp_path: Path, openai_server: ScriptedOpenAIServer
) -> None:
    agents = tmp_path / "agents"
    write(agents / "templates", "front-desk.template.yaml", TEMPLATE)

    made = astromesh(
        "new", "agent", "casa-desk", "--template", "front-desk", "--agents", str(agents),
        "--var", "hotel_name=Casa Azul", "--var", f"model_endpoint={openai_server.url}",
    )  # fmt: skip
    again = astromesh(
        "new", "agent", "casa-desk", "--template", "front-desk", "--agents", str(agents),
        "--var", "hotel_name=Casa Azul",
    )  # fmt: skip
    unfilled = astromesh(
        "new", "agent", "other", "--template", "front-desk", "--agents", str(agents)
    )
    checked = astromesh("validate", str(agents))

    assert made.returncode == 0, made.stderr
    assert again.returncode == 1 and "--force" in again.stderr
    assert unfilled.returncode == 1 and "'hotel_name'" in unfilled.stderr
    assert not (agents / "other.agent.yaml").exists()
    assert checked.returncode == 0, checked.stderr
    openai_server.push(Reply("Checkout is at 11:00."))
    async with AgentRuntime(agents, env={}, state=MemoryBackend()) as runtime:
        run = await runtime.run("casa-desk", "When is checkout?")
    assert run.status is RunStatus.SUCCEEDED, run.error
    system = openai_server.requests[0]["messages"][0]["content"]
    assert system.startswith("You are Casa Azul Front Desk at Casa Azul. Checkout is at 11:00.")


async def test_new_agent_and_new_tool_scaffold_files_that_validate_and_run(
    tmp_path: Path, openai_server: ScriptedOpenAIServer
) -> None:
    agents = tmp_path / "agents"

    agent = astromesh(
        "new", "agent", "clerk", "--agents", str(agents), "--provider", "openai_compat",
        "--model", "scripted", "--endpoint", openai_server.url,
    )  # fmt: skip
    tool = astromesh("new", "tool", "lookup_order", "--agents", str(agents))
    bad = astromesh("new", "tool", "class", "--agents", str(agents))

    assert agent.returncode == 0, agent.stderr
    assert tool.returncode == 0, tool.stderr
    assert bad.returncode == 1 and not (agents / "class.py").exists()
    entry = tool.stdout.split("add it to an agent's spec:\n", 1)[1]
    path = agents / "clerk.agent.yaml"
    path.write_text(path.read_text() + entry)
    assert astromesh("validate", str(agents)).returncode == 0
    openai_server.push(
        Reply(tool_calls=[("lookup_order", {"query": "A-17"})]), Reply("Order A-17 is packed.")
    )
    async with AgentRuntime(agents, env={}, state=MemoryBackend()) as runtime:
        run = await runtime.run("clerk", "Where is A-17?")
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert "lookup_order received: A-17" in openai_server.requests[1]["messages"][-1]["content"]


def test_new_workflow_scaffolds_a_workflow_of_the_folders_agent_that_validates(
    tmp_path: Path, openai_server: ScriptedOpenAIServer
) -> None:
    agents = tmp_path / "agents"
    made = astromesh(
        "new", "agent", "clerk", "--agents", str(agents), "--provider", "openai_compat",
        "--model", "scripted", "--endpoint", openai_server.url,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr

    flow = astromesh(
        "new", "workflow", "order-flow", "--agent", "clerk", "--approval", "--agents", str(agents)
    )
    typo = astromesh("new", "workflow", "other", "--agent", "clerc", "--agents", str(agents))

    written = agents / "workflows" / "order-flow.workflow.yaml"
    assert flow.returncode == 0, flow.stderr
    assert f"created {written}" in flow.stdout
    assert typo.returncode == 1 and "unknown agent 'clerc'" in typo.stderr
    assert not (agents / "workflows" / "other.workflow.yaml").exists()
    checked = astromesh("validate", str(agents))
    assert checked.returncode == 0, checked.stderr
    document = yaml.safe_load(written.read_text())
    assert [step["name"] for step in document["spec"]["steps"]] == ["answer", "review"]
    assert document["spec"]["steps"][1]["approval"]["on_reject"] == "fail"
