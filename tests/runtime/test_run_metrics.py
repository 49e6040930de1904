"""A run reports its cost when it ends, and its failure when it fails (EMF on stdout, as in
Lambda), through the runtime and a real HTTP model server."""

from __future__ import annotations

from pathlib import Path

import pytest

from astromesh.runs.state import RunStatus
from astromesh.telemetry.metrics import CIRCUIT_OPENED, RUN_COST, RUNS_FAILED
from tests.support.agents import PRICED_MODEL, write_agent, write_priced_provider
from tests.support.emf import emf_lines, points
from tests.support.model_servers import Reply


def write_priced_agent(agents_dir: Path, url: str) -> None:
    write_agent(agents_dir, model=PRICED_MODEL)
    write_priced_provider(agents_dir, url, breaker_threshold=2)


async def test_a_finished_run_reports_its_cost_and_a_failed_one_its_failure(
    agents_dir, make_runtime, openai_server, capsys
):
    write_priced_agent(agents_dir, openai_server.url)
    openai_server.push(Reply("ok", tokens_in=40, tokens_out=10))
    runtime = make_runtime(env={"ASTROMESH_METRICS": "emf", "ASTROMESH_STAGE": "test"})

    ok = await runtime.run("helper", "hello", session_id="s1")
    openai_server.push(Reply(status=503), Reply(status=503))  # two failures open the circuit
    failed = await runtime.run("helper", "hello again", session_id="s1")

    assert (ok.status, failed.status) == (RunStatus.SUCCEEDED, RunStatus.FAILED)
    documents = emf_lines(capsys.readouterr().out)
    costs = {d["run_id"]: d["RunCostUSD"] for d in points(documents, RUN_COST)}
    assert costs == {ok.id: pytest.approx(0.06), failed.id: 0}
    [failure] = points(documents, RUNS_FAILED)
    assert (failure["run_id"], failure["agent"], failure["status"]) == (
        failed.id,
        "helper",
        "failed",
    )
    [opened] = points(documents, CIRCUIT_OPENED)
    assert opened["circuit"] == "house/scripted"
    assert all(d["Stage"] == "test" for d in documents)
