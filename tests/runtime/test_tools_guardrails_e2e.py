"""Tools and guardrails wired into the runtime: a ReAct run against a scripted model server
uses each tool type from YAML, pauses for client tools, and applies guardrails on both
sides (what the model receives, what is stored, what the caller gets)."""

from __future__ import annotations

import pytest

from astromesh.executors.local import LocalExecutor
from astromesh.runs.state import RunStatus
from astromesh.tools.client import submit_tool_outputs
from tests.support.agents import primary, write_agent
from tests.support.http_receivers import Canned, ScriptedHTTPServer
from tests.support.mcp_server import stdio_command
from tests.support.model_servers import Reply


async def test_builtin_webhook_and_mcp_tools_from_yaml(openai_server, agents_dir, make_runtime):
    command, args = stdio_command()
    with ScriptedHTTPServer([Canned(200, {"status": "shipped"})]) as receiver:
        write_agent(
            agents_dir,
            model=primary(openai_server.url),
            tools=[
                {"type": "builtin", "name": "calculator"},
                {
                    "type": "webhook",
                    "name": "order_status",
                    "url": f"http://localhost:{receiver.port}/status",
                    "allow_private_network": True,
                    "parameters": {"order": {"type": "string"}},
                },
                {
                    "type": "mcp",
                    "name": "math_server",
                    "command": command,
                    "args": args,
                    "allowed_tools": ["add"],
                },
            ],
        )
        openai_server.push(
            Reply(
                tool_calls=[
                    ("calculator", {"expression": "6 * 7"}),
                    ("order_status", {"order": "A-1"}),
                    ("add", {"a": 40, "b": 2}),
                ]
            ),
            Reply("42, 42 and shipped."),
        )
        runtime = make_runtime()
        run = await runtime.run("helper", "do it all")
        await runtime.close()
    assert run.status is RunStatus.SUCCEEDED, run.error
    offered = sorted(t["function"]["name"] for t in openai_server.requests[0]["tools"])
    assert offered == ["add", "calculator", "order_status"]
    results = {s.data["name"]: s.data["result"] for s in run.steps if s.type == "tool_call"}
    assert results["calculator"] == '{"expression": "6 * 7", "result": 42}'
    assert results["order_status"] == '{"status": "shipped"}'
    assert results["add"] == "42"
    assert receiver.requests[0].json() == {"order": "A-1"}


async def test_a_client_tool_pauses_the_run_and_outputs_resume_it(
    openai_server, agents_dir, make_runtime, recorder
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=[
            {"type": "builtin", "name": "calculator"},
            {"type": "client", "name": "pick_date", "parameters": {"label": {"type": "string"}}},
        ],
    )
    openai_server.push(
        Reply(
            tool_calls=[
                ("calculator", {"expression": "1 + 1"}),
                ("pick_date", {"label": "Departure"}),
            ]
        ),
        Reply("You leave on 2026-12-24."),
    )
    runtime = make_runtime()
    paused = await runtime.run("helper", "book a trip", on_event=recorder)
    assert paused.status is RunStatus.REQUIRES_ACTION
    assert [(c.name, c.arguments) for c in paused.pending_actions] == [
        ("pick_date", {"label": "Departure"})
    ]
    assert "requires_action" in recorder.types() and "done" not in recorder.types()
    runs = (await runtime.state()).runs
    agent = await runtime.get("helper")
    done = await submit_tool_outputs(
        paused.id,
        [{"tool_call_id": paused.pending_actions[0].id, "output": "2026-12-24"}],
        runs=runs,
        agent=agent,
        resume=lambda run: LocalExecutor(runs).resume(run, agent, recorder),
    )
    assert done.status is RunStatus.SUCCEEDED and done.answer == "You leave on 2026-12-24."
    second = openai_server.requests[1]["messages"]
    assert [(m["role"], m["content"]) for m in second[-2:]] == [
        ("tool", '{"expression": "1 + 1", "result": 2}'),
        ("tool", "2026-12-24"),
    ]
    assert (await runs.get(done.id)).status is RunStatus.SUCCEEDED


GUARDS = {
    "input": [
        {"type": "pii_detection", "action": "redact"},
        {"type": "content_filter", "forbidden_keywords": ["bomb"]},
    ],
    "output": [{"type": "pii_detection", "action": "redact"}],
}


async def test_input_pii_is_redacted_before_the_model_and_the_store(
    openai_server, agents_dir, make_runtime
):
    write_agent(agents_dir, model=primary(openai_server.url), guardrails=GUARDS)
    openai_server.push(Reply("Write to support@example.com or call +44 20 7946 0958."))
    runtime = make_runtime()
    run = await runtime.run("helper", "I am ana@example.org, card 4111 1111 1111 1111")
    assert run.status is RunStatus.SUCCEEDED
    assert (
        openai_server.requests[0]["messages"][-1]["content"] == "I am [EMAIL], card [CREDIT_CARD]"
    )
    assert run.answer == "Write to [EMAIL] or call [PHONE]."
    stored = await (await runtime.state()).runs.get(run.id)
    raw = stored.model_dump_json()
    # digit runs, not four digits: a stored timestamp's microseconds may hold any four
    for secret in ("ana@example.org", "4111 1111", "support@example.com", "7946 0958"):
        assert secret not in raw
    guard_steps = [
        (s.data["side"], s.data["action"]) for s in stored.steps if s.type == "guardrail"
    ]
    assert guard_steps == [("input", "redact"), ("input", "allow"), ("output", "redact")]


async def test_a_blocked_input_never_reaches_the_model(openai_server, agents_dir, make_runtime):
    write_agent(agents_dir, model=primary(openai_server.url), guardrails=GUARDS)
    runtime = make_runtime()
    run = await runtime.run("helper", "how to build a bomb")
    assert run.status is RunStatus.FAILED
    assert run.error == "Your message contains content this agent does not accept."
    assert openai_server.requests == []
    stopped = [s.data for s in run.steps if s.type == "stopped"]
    assert stopped[0]["code"] == "guardrail_blocked"
    stored = await (await runtime.state()).runs.get(run.id)
    assert "bomb" not in stored.model_dump_json()


async def test_the_cost_limit_stops_the_run_between_steps(openai_server, agents_dir, make_runtime):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=[{"type": "builtin", "name": "calculator"}],
        guardrails={"output": [{"type": "cost_limit", "max_tokens_per_turn": 10}]},
    )
    openai_server.push(Reply(tool_calls=[("calculator", {"expression": "1+1"})]), Reply("2"))
    runtime = make_runtime()
    run = await runtime.run("helper", "1+1?")
    assert run.status is RunStatus.FAILED
    assert run.error == "This request reached the agent's usage limit."
    assert len(openai_server.requests) == 1
    assert [s.data["code"] for s in run.steps if s.type == "stopped"] == ["cost_limit"]


@pytest.mark.parametrize("transport", ["stdio"])
async def test_closing_the_runtime_stops_mcp_servers(transport, agents_dir, make_runtime):
    command, args = stdio_command()
    write_agent(agents_dir, tools=[{"type": "mcp", "name": "m", "command": command, "args": args}])
    runtime = make_runtime()
    agent = await runtime.get("helper")
    assert agent.tools.get("add") is None and agent.tools.pending == ["m"]  # not started yet
    await agent.tools.ensure_ready()  # first use
    connection = agent.tools.get("add").connection
    assert connection.connected
    await runtime.close()
    assert not connection.connected


async def test_output_guardrails_hold_the_token_stream_back(
    openai_server, agents_dir, make_runtime, recorder
):
    write_agent(agents_dir, model=primary(openai_server.url), guardrails=GUARDS)
    openai_server.push(Reply("Mail me at boss@example.com today."))
    run = await make_runtime().run("helper", "hi", on_event=recorder)
    assert run.answer == "Mail me at [EMAIL] today."
    # streamed tokens could not be taken back: only the screened answer is sent, once
    assert [e.data["content"] for e in recorder.events if e.type == "token"] == [run.answer]
    assert "boss@example.com" not in str([e.data for e in recorder.events])
