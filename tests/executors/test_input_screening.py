"""Input guardrails screen a run before its first write on the state machine's path too
(``StepFunctionsExecutor.submit``, then the ``orchestration_step`` functions), and a child run
is screened by its own agent before it is stored; blocked runs end as they do in-process."""

from __future__ import annotations

from pathlib import Path

from astromesh.runs.state import RunStatus
from astromesh.runtime import AgentRuntime
from tests.support.agents import primary, write_agent
from tests.support.executors import Side, comparable, run_locally, run_on_step_functions
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.stepfunctions import LocalStepFunctions

EMAIL = "ann.pii@example.org"
CARD = "4111 1111 1111 1111"
QUERY = f"Mail {EMAIL}, card {CARD}"
REDACT = {"input": [{"type": "pii_detection", "action": "redact"}]}
BLOCK = {"input": [{"type": "pii_detection", "action": "block", "entities": ["credit_card"]}]}


def raw_in_files(folder: Path) -> list[str]:
    """The files of ``folder`` (database, -wal, -shm) holding a raw value."""
    return [
        p.name
        for p in folder.iterdir()
        if p.is_file() and any(v.encode() in p.read_bytes() for v in (EMAIL, CARD, "ann.pii"))
    ]


async def test_a_run_on_the_state_machine_is_stored_redacted_from_its_first_write(
    aws_side: Side, step_functions: LocalStepFunctions
):
    aws_side.write_agent(guardrails=REDACT)
    aws_side.server.push(Reply("Noted."))

    run = await run_on_step_functions(
        aws_side, step_functions, QUERY, session_id="s1", context={"owner": EMAIL}
    )

    assert run.status is RunStatus.SUCCEEDED
    assert run.query == "Mail [EMAIL], card [CREDIT_CARD]" and run.context == {"owner": "[EMAIL]"}
    # Every write went through SQLite's WAL, which keeps old page versions: a raw first
    # write, later redacted by the prepare function, would still be there.
    assert raw_in_files(Path(str(aws_side.state.path)).parent) == []
    assert EMAIL not in str(aws_side.server.requests)
    prepares = [i for i in step_functions.invocations if i.event.get("action") == "prepare"]
    assert len(prepares) == 1


async def test_a_blocked_input_ends_alike_in_process_and_on_the_state_machine(
    local_side: Side, aws_side: Side, step_functions: LocalStepFunctions
):
    for side in (local_side, aws_side):
        side.write_agent(guardrails=BLOCK)

    here = await run_locally(local_side, QUERY, session_id="s1", context={"owner": EMAIL})
    there = await run_on_step_functions(
        aws_side, step_functions, QUERY, session_id="s1", context={"owner": EMAIL}
    )

    assert there.status is here.status is RunStatus.FAILED
    assert comparable(there) == comparable(here)
    assert [s.type for s in here.steps] == ["guardrail", "stopped"]
    assert here.steps[-1].data["code"] == "guardrail_blocked"
    assert here.context is None and CARD not in here.query
    assert aws_side.server.requests == local_side.server.requests == []
    for side in (local_side, aws_side):
        assert raw_in_files(Path(str(side.state.path)).parent) == []


async def test_a_child_run_is_screened_by_its_own_agent_before_it_is_stored(
    tmp_path: Path, openai_server: ScriptedOpenAIServer
):
    """The parent's model passes a raw address to an agent tool: the child agent's input
    guardrails redact it before the child run is first written."""
    agents, db = tmp_path / "agents", tmp_path / "state" / "runs.db"
    write_agent(agents, "clerk", model=primary(openai_server.url), guardrails=REDACT)
    write_agent(
        agents,
        "boss",
        model=primary(openai_server.url),
        tools=[{"name": "clerk", "type": "agent", "agent": "clerk"}],
    )
    openai_server.push(
        Reply(tool_calls=[("clerk", {"query": f"file this for {EMAIL}"})]),
        Reply("Filed."),
        Reply("The clerk filed it."),
    )
    runtime = AgentRuntime(
        agents, env={"ASTROMESH_STATE_BACKEND": "sqlite", "ASTROMESH_STATE_PATH": str(db)}
    )
    try:
        parent = await runtime.run("boss", "delegate", session_id="s1")
        [child] = [r for r in await (await runtime.state()).runs.list_runs() if r.parent_run_id]
        assert parent.status is RunStatus.SUCCEEDED
        assert child.query == "file this for [EMAIL]"
        assert "[EMAIL]" in str(openai_server.requests[1])
        assert EMAIL not in str(openai_server.requests[1])
    finally:
        await runtime.close()


async def test_an_answer_is_redacted_before_the_state_machine_stores_it(
    local_side: Side, aws_side: Side, step_functions: LocalStepFunctions
):
    """On Step Functions ``step`` stores the decision and ``finalize`` runs in another task:
    the answer is screened in ``step``, so no version of the run in the store (the WAL keeps
    old ones) holds it raw; the run ends as it does in-process."""
    output = {"output": [{"type": "pii_detection", "action": "redact"}]}
    for side in (local_side, aws_side):
        side.write_agent(guardrails=output)
        side.server.push(Reply(f"Write to {EMAIL}."))

    here = await run_locally(local_side, "who?", session_id="s1")
    there = await run_on_step_functions(aws_side, step_functions, "who?", session_id="s1")

    assert there.status is here.status is RunStatus.SUCCEEDED
    assert there.answer == here.answer == "Write to [EMAIL]."
    assert comparable(there) == comparable(here)
    assert [s.data["side"] for s in here.steps if s.type == "guardrail"] == ["output"]
    for side in (local_side, aws_side):
        assert raw_in_files(Path(str(side.state.path)).parent) == []
