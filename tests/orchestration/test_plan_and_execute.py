"""Plan and execute end to end: validated plans, parallel items, re-plans, synthesis."""

from __future__ import annotations

import json
from typing import Any

from astromesh.runs.state import RunStatus
from tests.support.agents import python_tool
from tests.support.model_servers import Reply
from tests.support.orchestration import (
    step_types,
    steps_of,
    stored,
    user_contents,
    write_pattern_agent,
    write_worker,
)

TOOLS = [python_tool("add", "add"), python_tool("explode", "explode")]


def plan(*steps: dict[str, Any]) -> Reply:
    """The planner's plan as a call of the ``respond`` tool."""
    return Reply(tool_calls=[("respond", {"steps": list(steps)})])


def item(id: str, task: str, *deps: str, **extra: Any) -> dict[str, Any]:
    return {"id": id, "task": task, "depends_on": list(deps), **extra}


def planner_agent(agents_dir, url: str, **fields: Any) -> None:
    fields.setdefault("tools", TOOLS)
    write_pattern_agent(agents_dir, "planner", url, "plan_and_execute", **fields)


async def test_plan_runs_tools_and_workers_then_synthesises(
    openai_server, agents_dir, make_runtime, recorder
):
    planner_agent(agents_dir, openai_server.url)
    openai_server.push(
        plan(
            item("sum", "add 2 and 3", tool="add", arguments={"a": 2, "b": 3}),
            item("fact", "name a prime number"),
            item("combine", "say whether the sum is the prime", "sum", "fact"),
        ),
        Reply("7"),  # worker: fact
        Reply("No, 5 is not 7."),  # worker: combine
        Reply("The sum is 5, which is not 7."),  # synthesizer
    )
    run = await make_runtime().run("planner", "Is 2+3 a prime?", on_event=recorder)

    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.answer == "The sum is 5, which is not 7."
    assert [s["role"] for s in steps_of(run, "model_call")] == [
        "planner",
        "worker",
        "worker",
        "synthesizer",
    ]
    assert step_types(run) == [
        "prepare",
        "model_call",
        "plan",
        "model_call",
        "plan_step",
        "tool_call",
        "plan_step",
        "model_call",
        "plan_step",
        "model_call",
    ]
    [tool] = steps_of(run, "tool_call")
    assert (tool["name"], tool["arguments"], tool["result"]) == ("add", {"a": 2, "b": 3}, "5")
    # the planner was offered only `respond`, with the plan schema, and told the tools
    planner_request = openai_server.requests[0]
    [respond] = planner_request["tools"]
    assert respond["function"]["name"] == "respond"
    assert "steps" in respond["function"]["parameters"]["properties"]
    system = planner_request["messages"][0]["content"]
    assert "- add: Add two integers." in system and "calling the `respond` tool" in system
    # a dependent step sees its dependencies' results
    [combine_prompt] = user_contents(openai_server.requests[2])
    assert "Your step: say whether the sum is the prime" in combine_prompt
    assert "- add 2 and 3: 5\n- name a prime number: 7" in combine_prompt
    [synthesis] = user_contents(openai_server.requests[3])
    assert synthesis.startswith("Request: Is 2+3 a prime?\n\nResults:\n- add 2 and 3: 5")
    assert recorder.tokens() == "The sum is 5, which is not 7."


async def test_independent_tool_items_run_in_parallel(openai_server, agents_dir, make_runtime):
    planner_agent(agents_dir, openai_server.url, tools=[python_tool("meet", "rendezvous")])
    openai_server.push(
        plan(
            item("a", "meet a", tool="meet", arguments={"name": "a"}),
            item("b", "meet b", tool="meet", arguments={"name": "b"}),
        ),
        Reply("Both met."),
    )
    run = await make_runtime().run("planner", "meet")
    assert run.status is RunStatus.SUCCEEDED
    assert [c["result"] for c in steps_of(run, "tool_call")] == ["together", "together"]
    assert run.iteration == 1  # one act for both


async def test_invalid_plan_json_is_retried_then_fails(openai_server, agents_dir, make_runtime):
    planner_agent(agents_dir, openai_server.url)
    openai_server.push(
        Reply("Step 1: add the numbers."),
        Reply(tool_calls=[("respond", '{"steps": [{"id": "a"')]),
    )
    run = await make_runtime().run("planner", "2+3?")
    assert run.status is RunStatus.FAILED
    assert run.steps[-1].data["code"] == "invalid_plan"
    assert run.error.startswith(
        "the plan was invalid after one retry: the arguments of 'respond' are not a JSON object"
    )
    errors = [s["error"] for s in steps_of(run, "invalid_output")]
    assert errors[0].startswith("the reply is not JSON")
    retry = openai_server.requests[1]["messages"]
    assert retry[-1]["content"].startswith("That reply was not valid: the reply is not JSON")
    assert len(openai_server.requests) == 2


async def test_a_plan_with_a_cycle_is_refused(openai_server, agents_dir, make_runtime):
    planner_agent(agents_dir, openai_server.url)
    cyclic = plan(item("a", "first", "c"), item("b", "second", "a"), item("c", "third", "b"))
    openai_server.push(cyclic, cyclic)
    run = await make_runtime().run("planner", "q")
    assert run.status is RunStatus.FAILED
    assert run.error == (
        "the plan was invalid after one retry: "
        "(object): steps depend on each other in a cycle: a -> c -> b -> a"
    )
    retry = openai_server.requests[1]["messages"][-1]
    assert retry["role"] == "tool" and "cycle: a -> c -> b -> a" in retry["content"]


async def test_plan_problems_are_fed_back_and_a_corrected_plan_runs(
    openai_server, agents_dir, make_runtime
):
    planner_agent(agents_dir, openai_server.url)
    openai_server.push(
        plan(
            item("a", "x", tool="multiply", arguments={"a": 1}),
            item("a", "y"),
            item("b", "z", "nope"),
        ),
        plan(item("a", "add", tool="add", arguments={"a": 1, "b": 1})),
        Reply("2"),
    )
    run = await make_runtime().run("planner", "1+1")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "2"
    [invalid] = steps_of(run, "invalid_output")
    assert invalid["error"] == "(object): step ids must be unique; repeated: a"
    # an unknown tool is a problem of its own (checked once the graph is valid)
    openai_server.push(
        plan(item("a", "x", tool="multiply", arguments={"a": 1})),
        plan(item("a", "x", tool="add", arguments={"a": "one", "b": 1})),
    )
    run = await make_runtime().run("planner", "again")
    assert run.status is RunStatus.FAILED
    first, second = (s["error"] for s in steps_of(run, "invalid_output"))
    assert first == "step 'a': unknown tool 'multiply' (tools: add, explode)"
    assert second.startswith("step 'a': arguments for 'add': a: 'one' is not of type 'integer'")


async def test_a_failed_item_triggers_a_replan(openai_server, agents_dir, make_runtime):
    planner_agent(agents_dir, openai_server.url)
    openai_server.push(
        plan(
            item("ok", "add 1 and 2", tool="add", arguments={"a": 1, "b": 2}),
            item("boom", "try the risky way", tool="explode", arguments={"reason": "disk full"}),
        ),
        plan(item("safe", "add 3 and 4", tool="add", arguments={"a": 3, "b": 4})),
        Reply("3 and 7."),
    )
    run = await make_runtime().run("planner", "sums")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "3 and 7."
    assert [p["replan"] for p in steps_of(run, "plan")] == [0, 1]
    [replan_request] = [
        m["content"] for m in openai_server.requests[1]["messages"] if m["role"] == "user"
    ][-1:]
    assert (
        "Step 'boom' (try the risky way) failed: tool 'explode' failed: ValueError: disk full"
        in (replan_request)
    )
    assert "Results obtained so far (do not redo them):\n- add 1 and 2: 3" in replan_request
    # the synthesis sees results from both plans
    [synthesis] = user_contents(openai_server.requests[2])
    assert "- add 1 and 2: 3\n- add 3 and 4: 7" in synthesis


async def test_replans_are_bounded(openai_server, agents_dir, make_runtime):
    planner_agent(agents_dir, openai_server.url, max_replans=1)
    boom = plan(item("boom", "explode", tool="explode", arguments={"reason": "again"}))
    openai_server.push(boom, boom)
    run = await make_runtime().run("planner", "q")
    assert run.status is RunStatus.FAILED
    assert run.steps[-1].data["code"] == "plan_failed"
    assert run.error == (
        "plan step 'boom' (explode) failed after 1 re-plan(s): "
        "tool 'explode' failed: ValueError: again"
    )
    assert len(openai_server.requests) == 2


async def test_text_mode_asks_for_json_in_the_reply(openai_server, agents_dir, make_runtime):
    planner_agent(agents_dir, openai_server.url, tool_calling="text")
    openai_server.push(
        Reply(json.dumps({"steps": [item("a", "think")]})),
        Reply("thought"),
        Reply("Done thinking."),
    )
    run = await make_runtime().run("planner", "think")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "Done thinking."
    first = openai_server.requests[0]
    assert "tools" not in first
    assert "as a single JSON object" in first["messages"][0]["content"]
    assert '"depends_on"' in first["messages"][0]["content"]


async def test_a_plan_item_can_call_an_agent(openai_server, agents_dir, make_runtime):
    write_worker(agents_dir, "expert", openai_server.url)
    planner_agent(
        agents_dir,
        openai_server.url,
        tools=[{"type": "agent", "name": "ask_expert", "agent": "expert"}],
    )
    openai_server.push(
        plan(item("ask", "ask the expert", tool="ask_expert", arguments={"query": "Moon?"})),
        Reply("384,400 km"),  # the expert's child run
        Reply("It is 384,400 km away."),
    )
    runtime = make_runtime()
    run = await runtime.run("planner", "How far is the Moon?")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "It is 384,400 km away."
    [call] = steps_of(run, "tool_call")
    child = await stored(runtime, call["child_run_id"])
    assert (child.agent, child.query, child.answer) == ("expert", "Moon?", "384,400 km")


async def test_max_iterations_bounds_the_rounds(openai_server, agents_dir, make_runtime):
    planner_agent(agents_dir, openai_server.url, max_iterations=1)
    openai_server.push(
        plan(
            item("a", "add", tool="add", arguments={"a": 1, "b": 1}),
            item("b", "add more", "a", tool="add", arguments={"a": 2, "b": 2}),
        ),
    )
    run = await make_runtime().run("planner", "q")
    assert run.status is RunStatus.FAILED
    assert run.steps[-1].data["code"] == "max_iterations"
    assert [c["id"] for c in steps_of(run, "plan_step")] == ["a"]
