"""The usage ledger on the state machine as in-process: a supervisor delegating to two
workers (child runs) runs once through LocalExecutor and once through the real definition on
moto with the real Lambda handlers; on both sides every stored run is in the ledger exactly
once, with exactly its usage, and the two ledgers agree."""

from __future__ import annotations

from datetime import timedelta

import pytest

from astromesh.runs.state import RunStatus, utcnow
from astromesh.telemetry.usage import UsageQuery, summarise
from tests.executors.conftest import aws_side, local_side, step_functions  # noqa: F401
from tests.support.executors import Side, run_locally, run_on_step_functions, script
from tests.support.model_servers import Reply
from tests.support.orchestration import write_worker


def _delegate(worker: str, task: str, **tokens: int) -> Reply:
    arguments = {"action": "delegate", "worker": worker, "task": task}
    return Reply(tool_calls=[("respond", arguments)], **tokens)


REPLIES = [
    _delegate("researcher", "find facts about Io", tokens_in=100, tokens_out=9),
    Reply("Io is volcanic.", tokens_in=30, tokens_out=4),
    _delegate("writer", "one line: Io is volcanic", tokens_in=140, tokens_out=11),
    Reply("Io, the volcanic moon.", tokens_in=25, tokens_out=6),
    Reply(
        tool_calls=[("respond", {"action": "finish", "answer": "Io, the volcanic moon."})],
        tokens_in=170,
        tokens_out=8,
    ),
]
SUPERVISOR = {
    "pattern": "supervisor",
    "workers": ["researcher", "writer"],
    "max_iterations": 6,
    "timeout_seconds": 30,
}


async def _ledger(side: Side) -> dict[str, tuple[int, int, int, float]]:
    """Per run id: (lines' calls, tokens in, tokens out, cost) from the ledger."""
    now = utcnow()
    query = UsageQuery("default", now - timedelta(hours=1), now + timedelta(hours=1))
    entries = await side.state.usage.entries(query)
    found: dict[str, tuple[int, int, int, float]] = {}
    for run_id in {e.run_id for e in entries}:
        total, _ = summarise([e for e in entries if e.run_id == run_id], None)
        found[run_id] = (total.calls, total.tokens_in, total.tokens_out, total.cost)
    return found


async def _stored(side: Side) -> dict[str, tuple[str, int, int]]:
    runs = await side.state.runs.list_runs(limit=20)
    assert all(run.status is RunStatus.SUCCEEDED for run in runs)
    return {run.id: (run.agent, run.usage.tokens_in, run.usage.tokens_out) for run in runs}


async def test_every_run_of_a_supervisor_is_in_the_ledger_once_on_both_executors(
    local_side: Side,  # noqa: F811
    aws_side: Side,  # noqa: F811
    step_functions,  # noqa: F811
) -> None:
    for side in (local_side, aws_side):
        write_worker(side.agents_dir, "researcher", side.server.url, description="Finds facts")
        write_worker(side.agents_dir, "writer", side.server.url, description="Writes prose")
        side.write_agent(orchestration=SUPERVISOR)
    script(local_side, aws_side, replies=REPLIES)

    here = await run_locally(local_side, "Tell me about Io", session_id="s1")
    there = await run_on_step_functions(aws_side, step_functions, "Tell me about Io")
    assert here.status is there.status is RunStatus.SUCCEEDED

    sums = []
    for side in (local_side, aws_side):
        stored, ledger = await _stored(side), await _ledger(side)
        assert set(ledger) == set(stored) and len(stored) == 3  # the supervisor and 2 workers
        for run_id, (_agent, tokens_in, tokens_out) in stored.items():
            assert ledger[run_id][1:3] == (tokens_in, tokens_out)
        by_agent = {stored[run_id][0]: ledger[run_id] for run_id in stored}
        sums.append(by_agent)
        assert sum(t[1] for t in ledger.values()) == sum(r.tokens_in for r in REPLIES)
        assert sum(t[2] for t in ledger.values()) == sum(r.tokens_out for r in REPLIES)
    assert sums[0] == {k: pytest.approx(v) for k, v in sums[1].items()}


async def test_a_tools_own_model_call_is_in_the_ledger_as_a_side_call(
    aws_side: Side,  # noqa: F811
    step_functions,  # noqa: F811
) -> None:
    """text_summarize calls the model inside the tool executor Lambda; that call reaches the
    run's usage and so its ledger lines (role ``summary``), beside the run's own calls."""
    aws_side.write_agent(tools=[{"name": "text_summarize", "type": "builtin"}])
    script(
        aws_side,
        replies=[
            Reply(tool_calls=[("text_summarize", {"text": "Long text. " * 30})], tokens_in=40),
            Reply("Short text.", tokens_in=100, tokens_out=20),  # the tool's own call
            Reply("Summary: short text.", tokens_in=60, tokens_out=9),
        ],
    )
    run = await run_on_step_functions(aws_side, step_functions, "summarise")
    assert run.status is RunStatus.SUCCEEDED

    now = utcnow()
    entries = await aws_side.state.usage.entries(
        UsageQuery("default", now - timedelta(hours=1), now + timedelta(hours=1))
    )
    lines = {e.role: (e.calls, e.tokens_in, e.tokens_out) for e in entries}
    assert lines == {"default": (2, 100, 16), "summary": (1, 100, 20)}
    total, _ = summarise(entries, None)
    assert (total.runs, total.tokens_in, total.tokens_out) == (1, 200, 36)
    assert (total.tokens_in, total.tokens_out) == (run.usage.tokens_in, run.usage.tokens_out)
