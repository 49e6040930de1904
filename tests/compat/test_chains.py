"""``spec.chain``: the next agents run when one finishes, as upstream documents it, each a
child run; ``GET /v1/agents/{name}/chain``; the run response's ``chain`` block; the same chain
in-process and on the Step Functions state machine.
"""

from __future__ import annotations

import json
import re

from astromesh.runs.state import RunStatus
from astromesh.runtime import child_run_id
from tests.channels.conftest import agents_dir, client_for, make_app
from tests.executors.conftest import aws_side, local_side, step_functions
from tests.support.agents import agent_document, primary, write_agent
from tests.support.executors import comparable, run_locally, run_on_step_functions, script
from tests.support.model_servers import Reply
from tests.support.stepfunctions import ORCHESTRATION_STEP

__all__ = ["agents_dir", "aws_side", "client_for", "local_side", "make_app", "step_functions"]

SCORE = {"score": {"type": "integer"}}
CHAIN = {
    "on_complete": [
        {
            "agent": "composer",
            "when": "{{ output.data.score > 7 }}",
            "input": "Write to the lead scored {{ output.data.score }}: {{ trigger.query }}",
        },
        {"agent": "logger"},
        {"agent": "triage", "default": True},
    ]
}


def _qualifier_and_links(agents_dir, url: str, chain=CHAIN) -> None:
    model = primary(url)
    write_agent(agents_dir, "qualifier", model=model, output_schema=SCORE, chain=chain)
    for name in ("composer", "logger", "triage"):
        write_agent(agents_dir, name, model=model)


async def test_a_chain_runs_its_links_as_child_runs(
    agents_dir, make_app, client_for, openai_server
):
    _qualifier_and_links(agents_dir, openai_server.url)
    openai_server.push(
        Reply('{"score": 9}'),
        Reply("Mail sent to ana@acme.test"),
        Reply("Logged."),
    )
    client = client_for(make_app())

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    assert body["status"] == "succeeded" and body["data"] == {"score": 9}
    chain = body["chain"]
    assert (chain["run_id"], chain["status"], chain["mode"]) == (
        body["run_id"],
        "completed",
        "sequential",
    )
    composer, logger, triage = chain["links"]
    assert (composer["agent"], composer["status"], composer["depth"], composer["via"]) == (
        "composer",
        "success",
        1,
        None,
    )
    assert composer["answer"] == "Mail sent to ana@acme.test" and composer["duration_ms"] >= 0
    assert (logger["agent"], logger["status"], logger["answer"]) == ("logger", "success", "Logged.")
    assert triage == {
        "agent": "triage",
        "depth": 1,
        "via": None,
        "status": "skipped",
        "reason": "condition_false",
    }
    # the composer got the qualifier's output through its input template
    assert openai_server.requests[1]["messages"][-1]["content"] == (
        "Write to the lead scored 9: ACME"
    )
    # the logger's default input is the previous agent's answer
    assert openai_server.requests[2]["messages"][-1]["content"] == '{"score": 9}'
    child = (await client.get(f"/v1/runs/{composer['run_id']}")).json()
    assert child["agent"] == "composer" and child["answer"] == composer["answer"]
    record = (await client.get(f"/v1/runs/{body['run_id']}")).json()
    assert record["chain"] == chain


async def test_the_default_fires_when_no_condition_matched_and_errors_continue(
    agents_dir, make_app, client_for, openai_server
):
    chain = {
        "on_complete": [
            {"agent": "composer", "when": "{{ output.data.score > 7 }}"},
            {"agent": "logger", "on_error": "continue"},
            {"agent": "triage", "default": True},
        ]
    }
    _qualifier_and_links(agents_dir, openai_server.url, chain)
    openai_server.push(
        Reply('{"score": 2}'),
        Reply("bad request", status=400),  # the logger's model refuses: the link fails
        Reply("A human will look at it."),
    )
    client = client_for(make_app())

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    assert body["status"] == "succeeded"  # the answer stands whatever the chain does
    chain_block = body["chain"]
    assert chain_block["status"] == "partial"
    statuses = [(link["agent"], link["status"]) for link in chain_block["links"]]
    assert statuses == [("composer", "skipped"), ("logger", "error"), ("triage", "success")]
    assert (
        "400" in chain_block["links"][1]["error"]
        or "bad request" in (chain_block["links"][1]["error"])
    )


async def test_a_failing_link_stops_the_chain_by_default(
    agents_dir, make_app, client_for, openai_server
):
    chain = {"on_complete": [{"agent": "logger"}, {"agent": "composer"}]}
    _qualifier_and_links(agents_dir, openai_server.url, chain)
    openai_server.push(Reply('{"score": 5}'), Reply("bad request", status=400))
    client = client_for(make_app())

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    assert body["chain"]["status"] == "failed"
    assert [link["status"] for link in body["chain"]["links"]] == ["error", "skipped"]
    assert body["chain"]["links"][1]["reason"] == "upstream_stopped"


async def test_the_chain_graph_route(agents_dir, make_app, client_for, openai_server):
    _qualifier_and_links(agents_dir, openai_server.url)
    write_agent(
        agents_dir,
        "composer",
        model=primary(openai_server.url),
        chain={"on_complete": [{"agent": "logger"}]},
    )
    client = client_for(make_app())

    for path in ("/v1/agents/qualifier/chain", "/v1/agents/qualifier/chain/"):
        graph = (await client.get(path)).json()
        assert (graph["agent"], graph["mode"], graph["max_depth"]) == ("qualifier", "sequential", 5)
        assert [(lk["agent"], lk["depth"], lk["via"]) for lk in graph["links"]] == [
            ("composer", 1, None),
            ("logger", 2, "composer"),
            ("logger", 1, None),
            ("triage", 1, None),
        ]
        assert graph["links"][0]["when"] == "{{ output.data.score > 7 }}"
        assert graph["links"][3]["default"] is True
    missing = await client.get("/v1/agents/logger/chain")
    assert missing.status_code == 404 and "does not declare spec.chain" in missing.text
    assert (await client.get("/v1/agents/nobody/chain")).status_code == 404


async def test_a_looping_chain_is_refused_before_any_run(
    agents_dir, make_app, client_for, openai_server
):
    model = primary(openai_server.url)
    write_agent(agents_dir, "ping", model=model, chain={"on_complete": [{"agent": "pong"}]})
    write_agent(agents_dir, "pong", model=model, chain={"on_complete": [{"agent": "ping"}]})
    client = client_for(make_app())

    response = await client.post("/v1/agents/ping/run", json={"query": "hi"})

    assert response.status_code == 409
    assert "chain of agent 'ping' loops: ping -> pong -> ping" in response.text
    assert openai_server.requests == []


_RUN_ID = re.compile(r"run_[0-9a-f]{32}")


def _without_ids(block: dict) -> dict:
    """The chain block but run ids and durations (new on each side)."""
    links = [{k: v for k, v in link.items() if k != "duration_ms"} for link in block["links"]]
    return json.loads(_RUN_ID.sub("<run>", json.dumps({**block, "links": links})))


async def test_a_chain_of_two_agents_runs_alike_locally_and_on_step_functions(
    local_side, aws_side, step_functions
):
    for side in (local_side, aws_side):
        side.write_agent(
            name="writer",
            output_schema={"topic": {"type": "string"}},
            chain={
                "on_complete": [{"agent": "reviewer", "input": "Review: {{ output.data.topic }}"}]
            },
        )
        side.write_agent(name="reviewer")
    script(
        local_side,
        aws_side,
        replies=[Reply('{"topic": "tides"}'), Reply("Reviewed: fine.")],
    )

    here = await run_locally(local_side, "Write about tides", agent="writer", session_id="s1")
    there = await run_on_step_functions(
        aws_side, step_functions, "Write about tides", agent="writer", session_id="s1"
    )

    assert comparable(there) == comparable(here)
    assert there.status is RunStatus.SUCCEEDED and there.data == {"topic": "tides"}
    assert _without_ids(there.chain) == _without_ids(here.chain)
    [link] = there.chain["links"]
    assert (link["agent"], link["status"], link["answer"]) == (
        "reviewer",
        "success",
        "Reviewed: fine.",
    )
    assert aws_side.server.requests == local_side.server.requests
    assert aws_side.server.requests[1]["messages"][-1]["content"] == "Review: tides"
    # on the state machine the child ran inside the finalize task, and is stored there
    child = await aws_side.state.runs.get(link["run_id"])
    assert (child.agent, child.parent_run_id, child.status) == (
        "reviewer",
        there.id,
        RunStatus.SUCCEEDED,
    )
    stages = [(i.function, i.event.get("action")) for i in step_functions.invocations]
    assert stages[-1] == (ORCHESTRATION_STEP, "finalize")


async def test_a_parallel_chain_evaluates_every_guard_first(
    agents_dir, make_app, client_for, openai_server
):
    chain = {
        "mode": "parallel",
        "on_complete": [
            {"agent": "composer", "when": "{{ output.data.score >= 5 }}"},
            {"agent": "logger", "when": "{{ output.data.score >= 9 }}"},
            {"agent": "triage", "default": True},
        ],
    }
    _qualifier_and_links(agents_dir, openai_server.url, chain)
    openai_server.push(Reply('{"score": 6}'), Reply("Composed."))
    client = client_for(make_app())

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    assert body["chain"]["mode"] == "parallel" and body["chain"]["status"] == "completed"
    assert [(lk["agent"], lk["status"]) for lk in body["chain"]["links"]] == [
        ("composer", "success"),
        ("logger", "skipped"),
        ("triage", "skipped"),
    ]

    sibling = agent_document(
        "posted",
        model=primary(openai_server.url),
        chain={
            "mode": "parallel",
            "on_complete": [
                {"agent": "composer"},
                {"agent": "logger", "when": "{{ steps.composer.answer }}"},
            ],
        },
    )
    response = await client.post("/v1/agents", json=sibling)
    assert response.status_code == 422
    [issue] = response.json()["error"]["issues"]
    assert issue["field"] == "spec.chain.on_complete[1].when"
    assert "use mode: sequential" in issue["message"]


async def test_a_link_is_retried_then_another_agent_runs_instead(
    agents_dir, make_app, client_for, openai_server
):
    chain = {
        "on_complete": [
            {
                "agent": "composer",
                "retry": {"max_attempts": 2, "backoff": "fixed", "initial_delay_seconds": 0},
                "on_error": "triage",
            },
            {"agent": "logger"},
        ]
    }
    _qualifier_and_links(agents_dir, openai_server.url, chain)
    openai_server.push(
        Reply('{"score": 3}'),
        Reply("refused", status=400),  # composer, attempt 1
        Reply("refused", status=400),  # composer, attempt 2
        Reply("Triaged."),  # triage, instead
        Reply("Logged."),
    )
    client = client_for(make_app())

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    links = body["chain"]["links"]
    assert [(lk["agent"], lk["status"]) for lk in links] == [
        ("composer", "error"),
        ("triage", "success"),
        ("logger", "success"),
    ]
    assert links[1]["instead_of"] == "composer" and links[1]["answer"] == "Triaged."
    assert body["chain"]["status"] == "partial"
    # each attempt was a child run of its own, then the one run instead
    assert len(openai_server.requests) == 5
    assert openai_server.requests[3]["messages"][-1]["content"] == '{"score": 3}'


async def test_a_link_that_times_out_is_an_error_and_its_run_is_cancelled(
    agents_dir, make_app, client_for, openai_server
):
    chain = {"on_complete": [{"agent": "composer", "timeout_seconds": 0.3}]}
    _qualifier_and_links(agents_dir, openai_server.url, chain)
    openai_server.push(Reply('{"score": 3}'), Reply("too late", delay=1.5))
    app = make_app()
    client = client_for(app)

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    assert body["status"] == "succeeded" and body["chain"]["status"] == "failed"
    [link] = body["chain"]["links"]
    assert (link["status"], link["error"]) == ("error", "timed out after 0.3s")
    runs = (await app.state.services.runtime.state()).runs
    child = await runs.get(child_run_id(body["run_id"], "chain:0#1"))
    assert child.status is RunStatus.CANCELLED and child.parent_run_id == body["run_id"]


async def test_a_chained_agents_own_chain_runs_and_is_listed_via_it(
    agents_dir, make_app, client_for, openai_server
):
    _qualifier_and_links(agents_dir, openai_server.url, {"on_complete": [{"agent": "composer"}]})
    write_agent(
        agents_dir,
        "composer",
        model=primary(openai_server.url),
        chain={"on_complete": [{"agent": "logger", "input": "Log: {{ output.answer }}"}]},
    )
    openai_server.push(Reply('{"score": 4}'), Reply("Drafted."), Reply("Logged."))
    client = client_for(make_app())

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    links = body["chain"]["links"]
    assert [(lk["agent"], lk["depth"], lk["via"], lk["status"]) for lk in links] == [
        ("composer", 1, None, "success"),
        ("logger", 2, "composer", "success"),
    ]
    assert openai_server.requests[2]["messages"][-1]["content"] == "Log: Drafted."
    logger_run = (await client.get(f"/v1/runs/{links[1]['run_id']}")).json()
    composer_run = (await client.get(f"/v1/runs/{links[0]['run_id']}")).json()
    assert composer_run["chain"]["links"][0]["run_id"] == logger_run["run_id"]
