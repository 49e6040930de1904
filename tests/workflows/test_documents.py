"""``kind: Workflow`` through the config loader: every problem on its file, line and field."""

from __future__ import annotations

import pytest

from astromesh.config import load_path, load_text
from tests.workflows.documents import LEAD_QUALIFICATION, steps

AGENTS = """apiVersion: astromesh/v1
kind: Agent
metadata: {name: %s}
spec:
  model: {primary: {provider: ollama, model: m}}
  prompts: {system: hi}
"""


def agents(*names: str) -> str:
    return "---\n".join(AGENTS % n for n in names)


def test_upstream_example_loads_beside_its_agents(tmp_path):
    (tmp_path / "agents.yaml").write_text(
        agents("web-researcher", "sales-qualifier", "email-composer")
    )
    (tmp_path / "example.workflow.yaml").write_text(LEAD_QUALIFICATION)
    result = load_path(tmp_path)
    assert result.errors == []
    wf = result.workflows["lead-qualification"]
    assert [s.type for s in wf.spec.steps] == ["agent", "agent", "switch", "agent", "tool"]
    assert wf.spec.steps[1].retry.backoff == "exponential"
    assert wf.source.file.endswith("example.workflow.yaml")
    # upstream's observability block is dropped with a warning, not an error
    [warning] = result.warnings
    assert warning.field == "spec.observability" and warning.line == 40


def test_an_unknown_agent_is_reported_on_its_line(tmp_path):
    (tmp_path / "agents.yaml").write_text(agents("web-researcher", "sales-qualifier"))
    (tmp_path / "w.yaml").write_text(LEAD_QUALIFICATION.replace("email-composer", "emial-composer"))
    result = load_path(tmp_path)
    [issue] = result.errors
    assert (issue.line, issue.field) == (31, "spec.steps[3].agent")
    assert "unknown agent 'emial-composer'" in issue.message
    assert "lead-qualification" not in result.workflows


BAD = [
    (
        """    - name: a
      switch:
        - {when: "{{ 1 }}", goto: nowhere}
        - {default: true, goto: b}
    - name: b
      tool: current_time
""",
        9,
        "spec.steps[0].switch[0].goto",
        "unknown step 'nowhere'",
    ),
    (
        """    - name: a
      tool: current_time
      on_error: retyr
""",
        9,
        "spec.steps[0].on_error",
        "unknown step 'retyr'",
    ),
    (
        """    - name: a
      tool: current_time
    - name: b
      switch:
        - {default: true, goto: a}
""",
        11,
        "spec.steps[1].switch[0].goto",
        "form a loop with no wait or approval",
    ),
    (
        """    - name: a
      tool: current_time
      on_error: a
""",
        9,
        "spec.steps[0].on_error",
        "the steps a -> a form a loop",
    ),
    (
        """    - name: a
      tool: current_time
      agent: x
""",
        8,
        "spec.steps[0].tool",
        "exactly one of agent, tool, switch, wait, approval or parallel (found: agent, tool)",
    ),
    (
        """    - name: a
      tool: current_time
    - name: a
      tool: current_time
""",
        9,
        "spec.steps[1].name",
        "duplicate step name 'a'",
    ),
    (
        """    - name: a
      tool: current_time
      retyr: {max_attempts: 2}
""",
        9,
        "spec.steps[0].retyr",
        "did you mean 'retry'",
    ),
    (
        """    - name: a
      tool: current_tme
""",
        8,
        "spec.steps[0].tool",
        "did you mean 'current_time'",
    ),
    (
        """    - name: a
      tool: current_time
      when: "{{ (9**(9**8)) % 7 }}"
""",
        9,
        "spec.steps[0].when",
        "over 4096 bits",
    ),
    (
        """    - name: a
      wait: {seconds: 99999999999}
""",
        8,
        "spec.steps[0].wait.seconds",
        "must be at most 31622400",
    ),
    (
        """    - name: a
      approval: {prompt: ok?, approver: "role:admn"}
""",
        8,
        "spec.steps[0].approval.approver",
        "did you mean 'admin'",
    ),
    (
        """    - name: a
      parallel:
        - name: b
          wait: {seconds: 1}
""",
        10,
        "spec.steps[0].parallel[0].wait",
        "a parallel branch is an agent or a tool step",
    ),
]


@pytest.mark.parametrize(("body", "line", "field", "message"), BAD)
def test_bad_workflows_are_issues_with_line_and_field(body, line, field, message):
    result = load_text(steps(body), source="w.yaml")
    assert result.workflows == {}
    [issue] = result.errors
    assert issue.file == "w.yaml"
    assert issue.field == field
    assert message in issue.message
    assert issue.line == line


def test_too_many_steps():
    body = "".join(f"    - name: s{i}\n      tool: current_time\n" for i in range(65))
    [issue] = load_text(steps(body)).errors
    assert issue.field == "spec.steps" and "64" in issue.message


def test_a_loop_through_an_approval_is_fine():
    body = """    - name: draft
      tool: current_time
    - name: review
      approval: {prompt: "again?", on_reject: draft}
"""
    assert load_text(steps(body)).errors == []
