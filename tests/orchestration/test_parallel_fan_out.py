"""Parallel fan-out end to end: agent and model targets at once, merge / vote / synthesize."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from astromesh.errors import ConfigurationError
from astromesh.runs.state import RunStatus
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.orchestration import (
    role_model,
    step_types,
    steps_of,
    stored,
    user_contents,
    write_pattern_agent,
    write_worker,
)


@pytest.fixture
def servers() -> Iterator[list[ScriptedOpenAIServer]]:
    """Three more model servers: concurrent targets each get their own, so order is fixed."""
    started = [ScriptedOpenAIServer().start() for _ in range(3)]
    yield started
    for server in started:
        server.stop()


async def test_merge_of_agent_and_model_targets(
    openai_server, servers, agents_dir, make_runtime, recorder
):
    one, two, _ = servers
    write_worker(agents_dir, "alpha", one.url)
    write_worker(agents_dir, "beta", two.url)
    write_pattern_agent(
        agents_dir,
        "fan",
        openai_server.url,
        "parallel_fan_out",
        targets=[{"agent": "alpha"}, {"model": "default"}, {"agent": "beta"}],
    )
    one.push(Reply("Alpha says 4."))
    two.push(Reply("Beta says four."))
    openai_server.push(Reply("The model says 4."))
    runtime = make_runtime()

    run = await runtime.run("fan", "2+2?", on_event=recorder)

    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.answer == (
        "[alpha]\nAlpha says 4.\n\n[model:default]\nThe model says 4.\n\n[beta]\nBeta says four."
    )
    assert step_types(run) == ["prepare", "model_call", "tool_call", "tool_call", "aggregate"]
    # every target got the same query
    for server in (one, two, openai_server):
        assert user_contents(server.requests[0]) == ["2+2?"]
    # the agent targets were one act, two child runs
    calls = steps_of(run, "tool_call")
    assert [c["name"] for c in calls] == ["alpha", "beta"]
    assert {s.iteration for s in run.steps if s.type == "tool_call"} == {0}
    children = [await stored(runtime, c["child_run_id"]) for c in calls]
    assert [(c.agent, c.parent_run_id) for c in children] == [("alpha", run.id), ("beta", run.id)]
    assert run.data["fan_out"] == {
        "aggregate": "merge",
        "answered": ["alpha", "model:default", "beta"],
        "failures": [],
    }


async def test_agent_targets_run_concurrently(servers, openai_server, agents_dir, make_runtime):
    one, two, _ = servers
    write_worker(agents_dir, "alpha", one.url)
    write_worker(agents_dir, "beta", two.url)
    write_pattern_agent(
        agents_dir,
        "fan",
        openai_server.url,
        "parallel_fan_out",
        targets=[{"agent": "alpha"}, {"agent": "beta"}],
    )
    one.push(Reply("a", delay=0.6))
    two.push(Reply("b", delay=0.6))
    runtime = make_runtime()
    await runtime.get("fan")
    started = time.perf_counter()
    run = await runtime.run("fan", "q")
    elapsed = time.perf_counter() - started
    assert run.status is RunStatus.SUCCEEDED
    # each child took at least its delay; run one after the other they would sum
    assert all(s.duration_ms >= 550 for s in run.steps if s.type == "tool_call")
    assert elapsed < 1.1


@pytest.fixture
def voters(servers, openai_server, agents_dir):
    """A fan-out over three model roles, each role on its own server."""
    a, b, c = servers

    def write(aggregate: str = "vote", **roles_extra: str) -> list[ScriptedOpenAIServer]:
        write_pattern_agent(
            agents_dir,
            "fan",
            openai_server.url,
            "parallel_fan_out",
            model=role_model(openai_server.url, a=a.url, b=b.url, c=c.url, **roles_extra),
            targets=[{"model": "a"}, {"model": "b"}, {"model": "c"}],
            aggregate=aggregate,
        )
        return [a, b, c]

    return write


async def test_vote_takes_the_most_common_normalised_answer(voters, make_runtime):
    a, b, c = voters()
    a.push(Reply("Lyon"))
    b.push(Reply("Paris."))
    c.push(Reply("  paris "))
    run = await make_runtime().run("fan", "Capital of France?")
    assert run.status is RunStatus.SUCCEEDED
    assert run.answer == "Paris."
    assert run.data["vote"] == {
        "tally": {"lyon": 1, "paris": 2},
        "winner": "paris",
        "winner_target": "model:b",
        "votes": {"model:a": "lyon", "model:b": "paris", "model:c": "paris"},
    }
    assert sorted(s["role"] for s in steps_of(run, "model_call")) == ["a", "b", "c"]


async def test_a_tied_vote_goes_to_the_first_target(voters, make_runtime):
    a, b, c = voters()
    a.push(Reply("Lyon"))
    b.push(Reply("Paris"))
    c.push(Reply("nope", status=400))
    run = await make_runtime().run("fan", "Capital of France?")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "Lyon"
    assert run.data["vote"]["tally"] == {"lyon": 1, "paris": 1}
    # the failed target is tolerated and recorded
    [failure] = run.data["fan_out"]["failures"]
    assert failure["target"] == "model:c" and "nope" in failure["error"]


async def test_every_target_failing_fails_the_run(voters, make_runtime):
    a, b, c = voters(aggregate="merge")
    for server in (a, b, c):
        server.push(Reply("down", status=400))
    run = await make_runtime().run("fan", "q")
    assert run.status is RunStatus.FAILED
    assert run.steps[-1].data["code"] == "all_targets_failed"
    assert run.error.startswith("every fan-out target failed: model:a: ")
    assert len(run.data["fan_out"]["failures"]) == 3


async def test_a_failing_agent_target_is_tolerated(
    servers, openai_server, agents_dir, make_runtime
):
    one, two, _ = servers
    write_worker(agents_dir, "alpha", one.url)
    write_worker(agents_dir, "beta", two.url)
    write_pattern_agent(
        agents_dir,
        "fan",
        openai_server.url,
        "parallel_fan_out",
        targets=[{"agent": "alpha"}, {"agent": "beta"}],
    )
    one.push(Reply("bad", status=400))
    two.push(Reply("Beta answer."))
    run = await make_runtime().run("fan", "q")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "[beta]\nBeta answer."
    [failure] = run.data["fan_out"]["failures"]
    assert failure["target"] == "alpha"
    assert failure["error"].startswith("tool 'alpha' failed: ChildRunFailed: agent 'alpha' failed")


async def test_synthesize_writes_one_answer_from_all(
    voters, openai_server, make_runtime, recorder, servers
):
    a, b, c = voters(aggregate="synthesize")
    a.push(Reply("Blue, from scattering."))
    b.push(Reply("Rayleigh scattering."))
    c.push(Reply("Because of the ocean."))
    openai_server.push(Reply("Rayleigh scattering makes it blue."))
    run = await make_runtime().run("fan", "Why is the sky blue?", on_event=recorder)
    assert run.status is RunStatus.SUCCEEDED
    assert run.answer == "Rayleigh scattering makes it blue."
    # no synthesizer role declared: the default candidates wrote it, with every answer
    [request] = openai_server.requests
    [prompt] = user_contents(request)
    assert prompt.startswith("Request: Why is the sky blue?\n\nAnswers:\n\n[model:a]\nBlue,")
    assert "[model:c]\nBecause of the ocean." in prompt
    assert steps_of(run, "model_call")[-1]["role"] == "synthesizer"
    assert recorder.tokens() == "Rayleigh scattering makes it blue."


async def test_an_undeclared_model_role_fails_at_build_time(
    openai_server, agents_dir, make_runtime
):
    write_pattern_agent(
        agents_dir,
        "fan",
        openai_server.url,
        "parallel_fan_out",
        targets=[{"model": "gpt-4o"}],
    )
    with pytest.raises(ConfigurationError, match=r"targets\[0\]: model role 'gpt-4o' is not"):
        await make_runtime().get("fan")
