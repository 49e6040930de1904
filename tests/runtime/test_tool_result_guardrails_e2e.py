"""``spec.guardrails.tool_results`` in real runs: the runtime, the scripted model server and
Python tools whose results carry personal data, forbidden words or planted instructions.

What is checked is what leaves the runtime: the model's next request, the run's steps and
stored results, the ``tool_result`` events, the episodic log; and that each result is
screened exactly once (one ``screen_tool_result`` span per result).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from astromesh.executors.local import LocalExecutor
from astromesh.executors.results import PREVIEW_LIMIT
from astromesh.guardrails.chain import WITHHELD_MESSAGE
from astromesh.runs.state import RunState, RunStatus
from astromesh.tools.client import submit_tool_outputs
from tests.support.agents import primary, python_tool, write_agent
from tests.support.leaky_tools import EMAIL, FORBIDDEN, PHONE
from tests.support.model_servers import Reply
from tests.support.spans import recorded_spans

TOOLS = [
    python_tool("add", "add"),
    {"name": "crm_lookup", "type": "python", "handler": "tests.support.leaky_tools:crm_lookup"},
    {"name": "fetch_page", "type": "python", "handler": "tests.support.leaky_tools:fetch_page"},
    {
        "name": "poisoned_doc",
        "type": "python",
        "handler": "tests.support.leaky_tools:poisoned_doc",
    },
    {"name": "crm_export", "type": "python", "handler": "tests.support.leaky_tools:crm_export"},
]
GUARDS = {
    "tool_results": [
        {"type": "pii_detection", "action": "redact", "entities": ["email", "phone"]},
        {"type": "content_filter", "forbidden_keywords": [FORBIDDEN]},
        {"type": "prompt_injection"},
    ]
}
REDACTED_RECORD = "C-7: Ana Lopez, [EMAIL], [PHONE], premium plan"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The pipeline's spans, recorded by a tracer of this test's own (no global provider)."""
    with recorded_spans() as exporter:
        yield exporter


def screening_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == "astromesh.screen_tool_result"]


def tool_messages(request: dict) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


async def test_pii_in_a_tool_result_is_redacted_before_the_model_sees_it(
    openai_server, agents_dir, make_runtime, recorder, spans
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=TOOLS,
        guardrails=GUARDS,
        memory={"episodic": {"backend": "memory"}},
    )
    openai_server.push(
        Reply(tool_calls=[("crm_lookup", {"customer": "C-7"}), ("add", {"a": 2, "b": 3})]),
        Reply("Ana is on the premium plan."),
    )
    runtime = make_runtime()
    run = await runtime.run("helper", "who is C-7?", on_event=recorder)

    assert run.status is RunStatus.SUCCEEDED, run.error
    # the model's second request carries the redacted record (and the untouched sum)
    assert tool_messages(openai_server.requests[1]) == [REDACTED_RECORD, "5"]
    # the tool_result frames too
    frames = {e.data["name"]: e.data for e in recorder.events if e.type == "tool_result"}
    assert frames["crm_lookup"]["content"] == REDACTED_RECORD and frames["crm_lookup"]["ok"]
    assert frames["add"]["content"] == "5"
    # the steps: the call's record holds the redacted text, its guardrail step follows it
    kinds = [(s.type, s.data.get("name")) for s in run.steps]
    assert kinds == [
        ("prepare", None),
        ("model_call", None),
        ("tool_call", "crm_lookup"),
        ("guardrail", "pii_detection"),
        ("tool_call", "add"),
        ("model_call", None),
    ]
    assert run.steps[2].data["result"] == REDACTED_RECORD
    assert run.steps[3].data == {
        "name": "pii_detection",
        "side": "tool_result",
        "action": "redact",
        "reason": "redacted EMAIL x1, PHONE x1",
        "findings": {"EMAIL": 1, "PHONE": 1},
        "call_id": "call_1",
        "tool": "crm_lookup",
    }
    # nothing stored keeps the original: the run, its kept results, the episodic log
    state = await runtime.state()
    stored = await state.runs.get(run.id)
    kept = await state.runs.get_results(run.id, ["call_1", "call_2"])
    episodes = await (await runtime.get("helper")).episodic.query(agent="helper")
    everything = [
        stored.model_dump_json(),
        *(r.model_dump_json() for r in kept.values()),
        *(e.model_dump_json() for e in episodes),
        json.dumps([e.data for e in recorder.events]),
    ]
    assert kept["call_1"].content == REDACTED_RECORD
    for text in everything:
        # "7946 0958", not "7946": a stored timestamp's microseconds may hold four digits
        assert EMAIL not in text and "7946 0958" not in text
    # screened once per result, each as its own stage
    screened = screening_spans(spans)
    assert sorted(s.attributes["astromesh.tool"] for s in screened) == ["add", "crm_lookup"]
    actions = {
        s.attributes["astromesh.tool"]: s.attributes["astromesh.guardrail_action"] for s in screened
    }
    assert actions == {"add": "allow", "crm_lookup": "redact"}


async def test_a_blocked_result_reaches_the_model_as_a_neutral_message_and_the_run_goes_on(
    openai_server, agents_dir, make_runtime, recorder
):
    write_agent(agents_dir, model=primary(openai_server.url), tools=TOOLS, guardrails=GUARDS)
    openai_server.push(
        Reply(tool_calls=[("fetch_page", {"url": "https://example.org/a"})]),
        Reply(tool_calls=[("poisoned_doc", {"topic": "shipping"})]),
        Reply(tool_calls=[("crm_lookup", {"customer": "C-7"})]),
        Reply("I could not read those pages, but Ana is on the premium plan."),
    )
    runtime = make_runtime()
    run = await runtime.run("helper", "research it", on_event=recorder)

    assert run.status is RunStatus.SUCCEEDED, run.error
    withheld_page = WITHHELD_MESSAGE.format(tool="fetch_page", guardrail="content_filter")
    withheld_doc = WITHHELD_MESSAGE.format(tool="poisoned_doc", guardrail="prompt_injection")
    assert tool_messages(openai_server.requests[1]) == [withheld_page]
    assert tool_messages(openai_server.requests[3]) == [
        withheld_page,
        withheld_doc,
        REDACTED_RECORD,
    ]
    verdicts = [
        (s.data["tool"], s.data["name"], s.data["action"], s.data["reason"])
        for s in run.steps
        if s.type == "guardrail"
    ]
    assert verdicts == [
        ("fetch_page", "content_filter", "block", "forbidden content: keyword #1"),
        (
            "poisoned_doc",
            "prompt_injection",
            "block",
            "possible prompt injection: exfiltration x1, ignore_instructions x1",
        ),
        ("crm_lookup", "pii_detection", "redact", "redacted EMAIL x1, PHONE x1"),
    ]
    calls = [
        (s.data["name"], s.data["ok"], s.data["result"]) for s in run.steps if s.type == "tool_call"
    ]
    assert calls[:2] == [
        ("fetch_page", False, withheld_page),
        ("poisoned_doc", False, withheld_doc),
    ]
    frames = [(e.data["ok"], e.data["content"]) for e in recorder.events if e.type == "tool_result"]
    assert frames[:2] == [(False, withheld_page), (False, withheld_doc)]
    # the withheld text went nowhere: not to the model, the stream, the run or its results
    stored = await (await runtime.state()).runs.get(run.id)
    kept = await (await runtime.state()).runs.get_results(run.id, ["call_1", "call_2"])
    leaks = [
        json.dumps(openai_server.requests),
        json.dumps([e.data for e in recorder.events]),
        stored.model_dump_json(),
        *(r.model_dump_json() for r in kept.values()),
    ]
    for text in leaks:
        for planted in (FORBIDDEN, "enrich", "evil.example", "Ignore all previous"):
            assert planted not in text


async def test_a_large_result_kept_by_reference_is_screened_whole(
    openai_server, agents_dir, make_runtime
):
    write_agent(agents_dir, model=primary(openai_server.url), tools=TOOLS, guardrails=GUARDS)
    openai_server.push(Reply(tool_calls=[("crm_export", {"rows": 400})]), Reply("Exported."))
    runtime = make_runtime()
    run = await runtime.run("helper", "export the CRM")

    assert run.status is RunStatus.SUCCEEDED, run.error
    # the personal data sat past the preview: the model got the full text, redacted
    [sent] = tool_messages(openai_server.requests[1])
    assert len(sent) > PREVIEW_LIMIT and sent.endswith("last row: [EMAIL], [PHONE]\n")
    # the run holds a preview referring to the kept result, which is the redacted full text
    assert run.results[0].truncated and run.messages[-2].content_ref == "call_1"
    [kept] = (await (await runtime.state()).runs.get_results(run.id, ["call_1"])).values()
    assert kept.content == sent and not kept.truncated
    assert [s.data["action"] for s in run.steps if s.type == "guardrail"] == ["redact"]


async def test_a_client_tools_output_is_screened_like_any_result(
    openai_server, agents_dir, make_runtime, recorder, spans
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=[{"type": "client", "name": "pick_contact", "parameters": {}}],
        guardrails=GUARDS,
    )
    openai_server.push(Reply(tool_calls=[("pick_contact", {})]), Reply("Noted."))
    runtime = make_runtime()
    paused = await runtime.run("helper", "pick someone", on_event=recorder)
    assert paused.status is RunStatus.REQUIRES_ACTION
    runs = (await runtime.state()).runs
    agent = await runtime.get("helper")

    async def resume(run: RunState) -> RunState:
        return await LocalExecutor(runs).resume(run, agent, recorder)

    done = await submit_tool_outputs(
        paused.id,
        [{"tool_call_id": paused.pending_actions[0].id, "output": {"email": EMAIL}}],
        runs=runs,
        agent=agent,
        resume=resume,
    )
    assert done.status is RunStatus.SUCCEEDED, done.error
    assert tool_messages(openai_server.requests[1]) == ['{"email": "[EMAIL]"}']
    assert [(s.type, s.data.get("action")) for s in done.steps][-3:] == [
        ("tool_call", None),
        ("guardrail", "redact"),
        ("model_call", None),
    ]
    assert EMAIL not in (await runs.get(done.id)).model_dump_json()
    assert EMAIL not in json.dumps([e.data for e in recorder.events])
    assert len(screening_spans(spans)) == 1


async def test_without_the_side_results_pass_unscreened_and_untraced(
    openai_server, agents_dir, make_runtime, spans
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=TOOLS,
        guardrails={"input": [{"type": "pii_detection"}]},
    )
    openai_server.push(Reply(tool_calls=[("crm_lookup", {"customer": "C-7"})]), Reply("Ok."))
    run = await make_runtime().run("helper", "who is C-7?")
    assert tool_messages(openai_server.requests[1]) == [
        f"C-7: Ana Lopez, {EMAIL}, {PHONE}, premium plan"
    ]
    assert [s.type for s in run.steps if s.type == "guardrail"] == ["guardrail"]  # input only
    assert screening_spans(spans) == []
