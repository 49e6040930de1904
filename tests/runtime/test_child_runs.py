"""A child run is named by the call that starts it, so repeating that call (a retried tool
executor) finds the child again instead of starting and orphaning a second one."""

from __future__ import annotations

from astromesh.runs.state import RunState, RunStatus
from astromesh.runtime import child_run_id
from tests.support.model_servers import Reply
from tests.support.orchestration import write_worker


async def test_a_repeated_call_returns_the_child_it_already_ran(
    openai_server, agents_dir, make_runtime
):
    write_worker(agents_dir, "worker", openai_server.url)
    openai_server.push(Reply("Done once."))
    runtime = make_runtime()
    parent = RunState(agent="boss", query="delegate", session_id="s")

    first = await runtime.run_child(parent, "worker", "do it", "call_1#1")
    again = await runtime.run_child(parent, "worker", "do it", "call_1#1")

    assert first.id == again.id == child_run_id(parent.id, "call_1#1")
    assert (again.status, again.answer) == (RunStatus.SUCCEEDED, "Done once.")
    assert len(openai_server.requests) == 1  # not run twice
    other = await runtime.run_child(parent, "worker", "do it", "call_2#1")
    assert other.id != first.id


async def test_a_child_left_running_is_carried_on_not_duplicated(
    openai_server, agents_dir, make_runtime
):
    """The first attempt stored the child and died before it ran: the retry runs that child."""
    write_worker(agents_dir, "worker", openai_server.url)
    openai_server.push(Reply("Finished on retry."))
    runtime = make_runtime()
    parent = RunState(agent="boss", query="delegate", session_id="s")
    runs = (await runtime.state()).runs
    orphan = await runs.create(
        RunState(
            id=child_run_id(parent.id, "call_1#1"),
            agent="worker",
            namespace="tests",
            session_id="s/worker",
            query="do it",
            parent_run_id=parent.id,
            depth=1,
        )
    )

    child = await runtime.run_child(parent, "worker", "do it", "call_1#1")

    assert child.id == orphan.id
    assert (child.status, child.answer) == (RunStatus.SUCCEEDED, "Finished on retry.")
    assert child.steps[0].type == "prepare"
    assert len(openai_server.requests) == 1
