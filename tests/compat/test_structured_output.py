"""``spec.output_schema``: the final answer is JSON that validates, ``data`` in the run
response and the run's record; one bounded repair; a clear ``output_invalid`` failure; and
hostile schemas refused at registration.

Models are scripted servers on loopback; the app is the real one (``tests/channels``).
"""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator

from astromesh.structured import MAX_SCHEMA_CHARS, MAX_SCHEMA_DEPTH
from tests.channels.conftest import agents_dir, client_for, make_app
from tests.executors.conftest import aws_side, local_side, step_functions
from tests.support.agents import agent_document, primary, write_agent
from tests.support.executors import comparable, run_locally, run_on_step_functions, script
from tests.support.model_servers import Reply, ScriptedOllamaServer

__all__ = ["agents_dir", "aws_side", "client_for", "local_side", "make_app", "step_functions"]

LEAD_SCHEMA = {  # upstream's shorthand (its sales-qualifier agent), plus a required field
    "score": {"type": "integer", "minimum": 1, "maximum": 10},
    "urgent": {"type": "boolean"},
    "next_action": {"type": "string", "pattern": "^(call|email|wait)$"},
}
FULL_SCHEMA = {"type": "object", "properties": LEAD_SCHEMA, "required": ["score", "urgent"]}
GOOD = {"score": 8, "urgent": True, "next_action": "call"}


def _lead_agent(agents_dir, url: str, schema=None, **spec) -> None:
    write_agent(
        agents_dir, "qualifier", model=primary(url), output_schema=schema or FULL_SCHEMA, **spec
    )


async def test_the_answer_is_data_that_validates(agents_dir, make_app, client_for, openai_server):
    _lead_agent(agents_dir, openai_server.url)
    openai_server.push(Reply(f"Qualified.\n```json\n{json.dumps(GOOD)}\n```"))
    client = client_for(make_app())

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    assert body["status"] == "succeeded" and body["data"] == GOOD
    Draft202012Validator(FULL_SCHEMA).validate(body["data"])
    assert body["answer"].startswith("Qualified.")  # the answer is left as the model wrote it
    record = (await client.get(f"/v1/runs/{body['run_id']}")).json()
    assert record["data"] == GOOD
    # native format (every candidate has JSON mode) and the instructions, both
    [request] = openai_server.requests
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["schema"] == FULL_SCHEMA
    system = request["messages"][0]["content"]
    assert "Output format (required)" in system and '"next_action"' in system
    assert [s["type"] for s in body["steps"]] == ["prepare", "model_call", "output_check"]


async def test_one_bad_reply_is_repaired(agents_dir, make_app, client_for, openai_server):
    _lead_agent(agents_dir, openai_server.url)
    openai_server.push(
        Reply('{"score": "high", "urgent": true}'),  # wrong type
        Reply(json.dumps(GOOD)),
    )
    client = client_for(make_app())

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    assert body["status"] == "succeeded" and body["data"] == GOOD
    checks = [s["data"] for s in body["steps"] if s["type"] == "output_check"]
    assert [(c["ok"], c["repair"]) for c in checks] == [(False, False), (True, True)]
    assert checks[0]["problem"] == "$.score: must be of type 'integer'"
    repair = openai_server.requests[1]["messages"]
    assert repair[-2]["content"] == '{"score": "high", "urgent": true}'
    assert repair[-1]["role"] == "user" and "$.score" in repair[-1]["content"]
    assert openai_server.requests[1]["response_format"]["type"] == "json_schema"


async def test_two_bad_replies_fail_clearly(agents_dir, make_app, client_for, openai_server):
    _lead_agent(agents_dir, openai_server.url)
    openai_server.push(Reply("I think it is a good lead."), Reply('{"urgent": "yes"}'))
    client = client_for(make_app())

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    assert body["status"] == "failed" and body["data"] is None
    assert body["error"].startswith("the answer does not match spec.output_schema after one repair")
    assert "$: 'score' is a required property" in body["error"]
    assert "$.urgent: must be of type 'boolean'" in body["error"]
    assert "'yes'" not in body["error"]  # the schema's words, never the answer's values
    stopped = body["steps"][-1]
    assert stopped["type"] == "stopped" and stopped["data"]["code"] == "output_invalid"
    assert len(openai_server.requests) == 2  # bounded: one repair, no more


async def test_a_pattern_mismatch_is_repaired_on_re2(
    agents_dir, make_app, client_for, openai_server
):
    _lead_agent(agents_dir, openai_server.url)
    openai_server.push(Reply(json.dumps({**GOOD, "next_action": "visit"})), Reply(json.dumps(GOOD)))
    client = client_for(make_app())

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    assert body["data"] == GOOD
    problem = next(s["data"]["problem"] for s in body["steps"] if s["type"] == "output_check")
    assert problem == "$.next_action: must match '^(call|email|wait)$'"


async def test_ollama_gets_the_schema_as_its_format(agents_dir, make_app, client_for):
    with ScriptedOllamaServer() as ollama:
        write_agent(
            agents_dir,
            "qualifier",
            model=primary(ollama.url, provider="ollama"),
            output_schema=LEAD_SCHEMA,
        )
        ollama.push(Reply(json.dumps(GOOD)))
        client = client_for(make_app())

        body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

        assert body["data"] == GOOD
        [request] = ollama.requests
        assert request["format"] == {"type": "object", "properties": LEAD_SCHEMA}
        assert "response_format" not in request and "response_format" not in request.get(
            "options", {}
        )


async def test_without_json_mode_instructions_and_the_check_do_the_work(
    agents_dir, make_app, client_for, openai_server
):
    (agents_dir / "providers.yaml").write_text(
        "apiVersion: astromesh/v1\nkind: ProviderConfig\nmetadata: {name: plain}\nspec:\n"
        "  providers:\n    plain:\n      type: openai_compat\n"
        f'      endpoint: "{openai_server.url}"\n'
        "      models: [scripted]\n      capabilities: {scripted: {json_mode: false}}\n"
    )
    model = {"primary": {"provider": "plain", "model": "scripted"}}
    write_agent(agents_dir, "qualifier", model=model, output_schema=FULL_SCHEMA)
    openai_server.push(Reply("no json here"), Reply(json.dumps(GOOD)))
    client = client_for(make_app())

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    assert body["data"] == GOOD
    assert all("response_format" not in r for r in openai_server.requests)
    assert "Output format (required)" in openai_server.requests[0]["messages"][0]["content"]


def _registered(url: str, schema) -> dict:
    return agent_document("posted", model=primary(url), output_schema=schema)


async def test_hostile_schemas_are_refused_at_registration(make_app, client_for, openai_server):
    client = client_for(make_app())

    def nested(levels: int) -> dict:
        schema: dict = {"type": "string"}
        for _ in range(levels):
            schema = {"type": "object", "properties": {"x": schema}}
        return schema

    hostile = {
        "remote $ref": {
            "type": "object",
            "properties": {"a": {"$ref": "http://169.254.169.254/x"}},
        },
        "too deep": nested(MAX_SCHEMA_DEPTH),
        "too large": {
            "type": "object",
            "properties": {f"p{i}": {"type": "string"} for i in range(MAX_SCHEMA_CHARS // 20)},
        },
        "backtracking regex": {
            "type": "object",
            "properties": {"a": {"type": "string", "pattern": "^(a+)+\\1$"}},
        },
        "not a schema": {"type": "object", "properties": {"a": {"type": "integr"}}},
        "not an object": {"type": "array", "items": {"type": "string"}},
    }
    for case, schema in hostile.items():
        response = await client.post("/v1/agents", json=_registered(openai_server.url, schema))
        assert response.status_code == 422, case
        issues = response.json()["error"]["issues"]
        assert all(i["field"].startswith("spec.output_schema") for i in issues), (case, issues)
    assert (await client.get("/v1/agents/posted")).status_code == 404

    accepted = await client.post("/v1/agents", json=_registered(openai_server.url, LEAD_SCHEMA))
    assert accepted.status_code == 201


async def test_the_repair_runs_alike_locally_and_on_step_functions(
    local_side, aws_side, step_functions
):
    for side in (local_side, aws_side):
        side.write_agent(output_schema=FULL_SCHEMA)
    script(local_side, aws_side, replies=[Reply('{"score": 11}'), Reply(json.dumps(GOOD))])

    here = await run_locally(local_side, "ACME", session_id="s1")
    there = await run_on_step_functions(aws_side, step_functions, "ACME", session_id="s1")

    assert comparable(there) == comparable(here)
    assert there.data == here.data == GOOD
    assert aws_side.server.requests == local_side.server.requests
    stored = await aws_side.state.runs.get(there.id)
    assert stored.data == GOOD
    # the repair call is part of the step task: no extra state in the machine
    actions = [i.event.get("action") for i in step_functions.invocations if not i.error]
    assert actions == ["prepare", "step", "finalize"]


async def test_data_is_parsed_from_the_screened_answer(
    agents_dir, make_app, client_for, openai_server
):
    schema = {"contact": {"type": "string"}, "score": {"type": "integer"}}
    write_agent(
        agents_dir,
        "qualifier",
        model=primary(openai_server.url),
        output_schema=schema,
        guardrails={"output": [{"type": "pii_detection", "action": "redact"}]},
    )
    openai_server.push(Reply('{"contact": "ana@acme.test", "score": 8}'))
    client = client_for(make_app())

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    # the model's object validated, then the output guardrail redacted it: data is what the
    # caller may see, never the raw address
    assert body["data"] == {"contact": "[EMAIL]", "score": 8}
    assert "ana@acme.test" not in json.dumps(body)


async def test_a_redaction_that_breaks_the_schema_fails_as_output_invalid(
    agents_dir, make_app, client_for, openai_server
):
    schema = {
        "type": "object",
        "properties": {"contact": {"type": "string", "pattern": "^[^@ ]+@[^@ ]+$"}},
        "required": ["contact"],
    }
    write_agent(
        agents_dir,
        "qualifier",
        model=primary(openai_server.url),
        output_schema=schema,
        guardrails={"output": [{"type": "pii_detection", "action": "redact"}]},
    )
    openai_server.push(Reply('{"contact": "ana@acme.test"}'))
    client = client_for(make_app())

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    assert body["status"] == "failed" and body["data"] is None
    assert "after the output guardrails" in body["error"] and "$.contact" in body["error"]
    assert body["steps"][-1]["data"]["code"] == "output_invalid"
    assert "ana@acme.test" not in json.dumps(body)


async def test_a_rejected_answer_is_not_stored_unscreened(
    agents_dir, make_app, client_for, openai_server
):
    write_agent(
        agents_dir,
        "qualifier",
        model=primary(openai_server.url),
        output_schema=FULL_SCHEMA,
        guardrails={"output": [{"type": "pii_detection", "action": "redact"}]},
    )
    openai_server.push(Reply('{"score": "ana@acme.test"}'), Reply(json.dumps(GOOD)))
    app = make_app()
    client = client_for(app)

    body = (await client.post("/v1/agents/qualifier/run", json={"query": "ACME"})).json()

    assert body["data"] == GOOD
    # the model saw its own reply to repair it...
    assert openai_server.requests[1]["messages"][-2]["content"] == '{"score": "ana@acme.test"}'
    # ...but the run as stored holds the screened copy only
    stored = await (await app.state.services.runtime.state()).runs.get(body["run_id"])
    assert "ana@acme.test" not in stored.model_dump_json()
    assert '{"score": "[EMAIL]"}' in [m.content for m in stored.messages]


async def test_a_streamed_run_ends_with_the_data_and_chain_in_its_done_frame(
    agents_dir, make_app, client_for, openai_server
):
    from tests.channels.conftest import parse_sse

    _lead_agent(agents_dir, openai_server.url)
    openai_server.push(Reply(json.dumps(GOOD)))
    client = client_for(make_app())

    response = await client.post("/v1/agents/qualifier/stream", json={"query": "ACME"})

    assert response.status_code == 200
    event, done = parse_sse(response.text)[-1]
    assert event == "done" and done["status"] == "succeeded"
    assert done["data"] == GOOD and done["chain"] is None
