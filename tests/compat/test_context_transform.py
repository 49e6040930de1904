"""Upstream's ``context_transform`` on agent tools: the call's arguments, reshaped by a template,
become the child run's context and its system prompt's variables."""

from __future__ import annotations

from pathlib import Path

from astromesh.config import load_text
from astromesh.runs.state import RunStatus
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from tests.compat.documents import write
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.orchestration import steps_of, stored


def manager(url: str, transform: str) -> str:
    return f"""\
apiVersion: astromesh/v1
kind: Agent
metadata:
  name: sales-manager
spec:
  model:
    primary: {{provider: openai_compat, model: scripted, endpoint: "{url}"}}
  tools:
    - name: qualify-lead
      type: agent
      agent: sales-qualifier
      description: "Qualify a lead"
      parameters:
        company: {{type: string}}
        deal_size: {{type: integer}}
      context_transform: >
{transform}
"""


QUALIFIER = """\
apiVersion: astromesh/v1
kind: Agent
metadata:
  name: sales-qualifier
spec:
  model:
    primary: {{provider: openai_compat, model: scripted, endpoint: "{url}"}}
  prompts:
    system: |
      You qualify leads.
      {{% if company %}}Company: {{{{ company }}}}{{% endif %}}
      Priority: {{{{ context.priority | default('none') }}}}
"""

UPSTREAM_TRANSFORM = """\
        {
          "company": "{{ data.company | default('Unknown') }}",
          "priority": "{% if data.deal_size|int > 100000 %}high{% else %}normal{% endif %}"
        }
"""


async def test_the_child_gets_the_transformed_context_as_prompt_variables(
    tmp_path: Path, openai_server: ScriptedOpenAIServer
) -> None:
    write(tmp_path, "manager.agent.yaml", manager(openai_server.url, UPSTREAM_TRANSFORM))
    write(tmp_path, "qualifier.agent.yaml", QUALIFIER.format(url=openai_server.url))
    openai_server.push(
        Reply(tool_calls=[("qualify-lead", {"company": "Initech", "deal_size": 250000})]),
        Reply("Qualified: budget confirmed."),
        Reply("Initech is qualified."),
    )

    async with AgentRuntime(tmp_path, env={}, state=MemoryBackend()) as runtime:
        run = await runtime.run(
            "sales-manager", "Qualify Initech", session_id="s", context={"region": "EU"}
        )
        [call] = steps_of(run, "tool_call")
        child = await stored(runtime, call["child_run_id"])

    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.answer == "Initech is qualified."
    # the transform goes over the parent's context
    assert child.context == {"region": "EU", "company": "Initech", "priority": "high"}
    system = openai_server.requests[1]["messages"][0]["content"]
    assert "Company: Initech" in system and "Priority: high" in system


async def test_a_transform_that_does_not_render_an_object_fails_the_call_not_the_run(
    tmp_path: Path, openai_server: ScriptedOpenAIServer
) -> None:
    write(tmp_path, "manager.agent.yaml", manager(openai_server.url, "        [1, 2]\n"))
    write(tmp_path, "qualifier.agent.yaml", QUALIFIER.format(url=openai_server.url))
    openai_server.push(
        Reply(tool_calls=[("qualify-lead", {"company": "Initech", "deal_size": 5})]),
        Reply("I could not qualify it."),
    )

    async with AgentRuntime(tmp_path, env={}, state=MemoryBackend()) as runtime:
        run = await runtime.run("sales-manager", "Qualify Initech", session_id="s")

    assert run.status is RunStatus.SUCCEEDED, run.error
    [call] = steps_of(run, "tool_call")
    assert "context_transform must render a JSON object, got list" in str(call)
    assert len(openai_server.requests) == 2  # the qualifier never ran


def test_a_template_bomb_in_a_transform_is_refused_at_load_on_its_line() -> None:
    bomb = '        {"x": "{{ 9 ** (9 ** 9) }}"}\n'
    result = load_text(manager("http://127.0.0.1:9/v1", bomb), env={})

    [issue] = result.errors
    assert issue.field == "spec.tools[0].context_transform"
    assert issue.line == 16
