"""A redacting agent's spans hold no raw PII, whether content capture is on or off."""

from __future__ import annotations

import json

import pytest

from astromesh.telemetry.content import CAPTURE_ENV
from tests.support.agents import primary, python_tool, write_agent
from tests.support.model_servers import Reply

EMAIL = "ana.lopez@example.com"
PII = {"type": "pii_detection", "action": "redact", "entities": ["email"]}


@pytest.mark.parametrize("capture", [True, False])
async def test_no_raw_pii_on_spans(openai_server, agents_dir, make_runtime, exported, capture):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=[python_tool("add", "add")],
        guardrails={"input": [PII], "output": [PII]},
    )
    # the model itself repeats the address (in a tool call and in its answer): only the
    # output guardrails would catch that, after the chat span recorded it
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 2, "b": 3, "note": EMAIL})]),
        Reply(f"Done, I wrote to {EMAIL}: 5."),
    )
    env = {CAPTURE_ENV: "true"} if capture else {}
    runtime = make_runtime(env=env)

    run = await runtime.run("helper", f"Mail {EMAIL} the sum of 2 + 3")

    stored = await (await runtime.state()).runs.get(run.id)
    texts = [json.dumps(dict(s.attributes)) for s in exported.all()]
    texts += [json.dumps(s) for s in stored.trace.spans]
    assert texts and not [t for t in texts if EMAIL in t]
    captured = [
        s.attributes["gen_ai.input.messages"]
        for s in exported.all()
        if "gen_ai.input.messages" in s.attributes
    ]
    if capture:  # content is there, redacted
        assert captured and all("[EMAIL]" in c for c in captured)
        tool = exported.one("execute_tool add").attributes
        assert "[EMAIL]" in tool["gen_ai.tool.call.arguments"]
        assert "note" in tool["gen_ai.tool.call.result"]  # add() refused the extra argument
        assert tool["error.type"] == "tool_error"
        chats = exported.named("chat ")
        assert "[EMAIL]" in chats[-1].attributes["gen_ai.output.messages"]
    else:
        assert captured == []
