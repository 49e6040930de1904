"""``astromesh validate FILE`` checks the file with the documents beside it, as they will run.

Upstream ships ``config/agents/sales-qualifier.agent.yaml`` chaining ``email-composer``, which
the next file defines: checked alone, the chain named a missing agent that is not missing.
"""

from __future__ import annotations

from pathlib import Path

from tests.compat.documents import billing_agent, member_agent, write
from tests.test_cli import astromesh

URL = "http://127.0.0.1:9/v1"


def _qualifier(chained: str) -> str:
    return f"""\
apiVersion: astromesh/v1
kind: Agent
metadata:
  name: qualifier
spec:
  model:
    primary: {{provider: openai_compat, model: scripted, endpoint: "{URL}"}}
  chain:
    on_complete:
      - agent: {chained}
        input: "{{{{ output.answer }}}}"
"""


def test_a_file_whose_chain_names_an_agent_defined_beside_it_is_valid(tmp_path: Path) -> None:
    qualifier = write(tmp_path, "qualifier.agent.yaml", _qualifier("billing"))
    write(tmp_path, "billing.agent.yaml", billing_agent(URL))
    write(tmp_path, "broken.agent.yaml", "apiVersion: astromesh/v1\nkind: Agent\n")

    done = astromesh("validate", str(qualifier))

    assert done.returncode == 0, done.stderr
    assert "ok: 1 agent(s), 0 provider(s), 0 RAG pipeline(s) in 1 file(s)" in done.stdout
    assert "broken" not in done.stderr  # a neighbour's problems are its own check's


def test_the_folder_check_still_reports_every_file(tmp_path: Path) -> None:
    write(tmp_path, "qualifier.agent.yaml", _qualifier("billing"))
    write(tmp_path, "billing.agent.yaml", billing_agent(URL))
    broken = write(tmp_path, "broken.agent.yaml", "apiVersion: astromesh/v1\nkind: Agent\n")

    done = astromesh("validate", str(tmp_path))

    assert done.returncode == 1
    assert f"{broken}:" in done.stderr and "metadata" in done.stderr


def test_an_agent_defined_nowhere_beside_the_file_is_still_an_error(tmp_path: Path) -> None:
    qualifier = write(tmp_path, "qualifier.agent.yaml", _qualifier("billng"))
    write(tmp_path, "billing.agent.yaml", billing_agent(URL))

    done = astromesh("validate", str(qualifier))

    assert done.returncode == 1
    assert f"{qualifier}:1" in done.stderr
    assert "agent 'billng', chained by 'qualifier', is not defined" in done.stderr


def test_a_file_check_does_not_walk_below_the_folder(tmp_path: Path) -> None:
    """The server serving the folder would see ``deeper/``; a file check reads only the
    file's own folder, so validating ``~/draft.yaml`` never reads a whole home folder."""
    qualifier = write(tmp_path, "qualifier.agent.yaml", _qualifier("composer"))
    write(tmp_path / "deeper", "composer.agent.yaml", member_agent(URL, "composer", "Writes"))

    done = astromesh("validate", str(qualifier))

    assert done.returncode == 1
    assert "agent 'composer', chained by 'qualifier', is not defined" in done.stderr


WORKFLOW = """\
apiVersion: astromesh/v1
kind: Workflow
metadata:
  name: lead-flow
spec:
  steps:
    - name: qualify
      agent: billing
      input: "{{ trigger.query }}"
"""


def test_a_file_checks_against_the_folder_it_is_served_from(tmp_path: Path) -> None:
    """Upstream serves config/: its workflows/ run agents of agents/. Given that folder
    (``--agents``, or the agents folder holding the file by default), the step's agent
    resolves; checked with its own folder only, it does not."""
    write(tmp_path / "config" / "agents", "billing.agent.yaml", billing_agent(URL))
    flow = write(tmp_path / "config" / "workflows", "lead.workflow.yaml", WORKFLOW)

    alone = astromesh("validate", str(flow))
    served = astromesh("validate", str(flow), "--agents", str(tmp_path / "config"))
    by_default = astromesh(
        "validate", str(flow), env={"ASTROMESH_AGENTS_DIR": str(tmp_path / "config")}
    )

    assert alone.returncode == 1 and "unknown agent 'billing'" in alone.stderr
    assert served.returncode == 0, served.stderr
    assert "in 1 file(s)" in served.stdout and "1 agent(s)" not in served.stdout
    assert by_default.returncode == 0, by_default.stderr
