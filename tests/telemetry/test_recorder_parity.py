"""The lean recorder (no exporter configured) and the SDK's tracer (an ``OTEL_*`` span setting
makes the runtime use it) record the same spans: the same records kept with the run, in the
same order, with the same tree, attributes (content captured, guardrails redacting, a failed
tool call, a failed run) and statuses; and the same spans reach an added processor."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from astromesh.runs.state import RunState
from astromesh.telemetry import provider
from astromesh.telemetry.content import CAPTURE_ENV
from tests.support.agents import primary, python_tool, write_agent
from tests.support.leaky_tools import EMAIL
from tests.support.model_servers import Reply
from tests.support.spans import recorded_spans

PII = {"type": "pii_detection", "action": "redact", "entities": ["email", "phone"]}
TOOLS = [
    python_tool("add", "add"),
    {"name": "crm_lookup", "type": "python", "handler": "tests.support.leaky_tools:crm_lookup"},
]


@contextmanager
def sdk_tracer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The SDK's tracer in the block: a span setting (at its default value, so the SDK records
    what it would without it) turns the lean recorder off."""
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "128")
    provider.rebuild()
    try:
        yield
    finally:
        monkeypatch.delenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT")
        provider.rebuild()


def script(openai_server: Any, iterations: int) -> None:
    """Two tool calls (one refused: a bad argument), another, then the answer; or only the
    first step when the run stops after one iteration."""
    replies = [
        Reply(
            tool_calls=[("crm_lookup", {"customer": "C-7"}), ("add", {"a": 2, "note": EMAIL})],
            tokens_in=20,
            tokens_out=5,
        ),
        Reply(tool_calls=[("add", {"a": 2, "b": 3})], tokens_in=30, tokens_out=6),
        Reply(f"C-7 is Ana, {EMAIL}."),
    ]
    openai_server.push(*replies[: 1 if iterations == 1 else 3])


def normalized(run: RunState, value: Any) -> Any:
    """``value`` with what differs between two runs of one script (ids) replaced."""
    if isinstance(value, str):
        value = value.replace(run.id, "RUN").replace(run.session_id, "SESSION")
        value = value.replace(run.trace.trace_id, "TRACE")
        calls = [s.data["id"] for s in run.steps if s.type == "tool_call"]
        for number, call_id in enumerate(calls):  # the server numbers calls across runs
            value = value.replace(f'"{call_id}"', f'"CALL{number}"')
            value = f"CALL{number}" if value == call_id else value
        return value
    if isinstance(value, list | tuple):
        return [normalized(run, v) for v in value]
    return value


def tree(run: RunState) -> list[tuple[Any, ...]]:
    """The run's span records, in order, ids and times replaced by the parent's name."""
    names = {s["span_id"]: s["name"] for s in run.trace.spans}
    names[run.trace.span_id] = "ROOT"
    return [
        (
            s["name"],
            names.get(s["parent_span_id"], s["parent_span_id"]),
            s["kind"],
            s["status"],
            normalized(run, s.get("error")),
            [(k, normalized(run, v)) for k, v in s["attributes"].items()],
            s["end_ns"] >= s["start_ns"] > 0,
        )
        for s in run.trace.spans
    ]


def exported_view(run: RunState, spans: Any) -> list[tuple[Any, ...]]:
    return [
        (
            s.name,
            s.parent is None,
            s.kind,
            s.status.status_code,
            normalized(run, s.status.description),
            [(k, normalized(run, v)) for k, v in s.attributes.items()],
            s.resource.attributes["service.name"],
            s.instrumentation_scope.name,
        )
        for s in spans
    ]


async def one_run(openai_server, runtime, session: str, iterations: int) -> tuple[Any, Any]:
    script(openai_server, iterations)
    with recorded_spans() as exporter:
        run = await runtime.run("helper", f"who is C-7? mail {EMAIL}", session_id=session)
        spans = exporter.get_finished_spans()
    stored = await (await runtime.state()).runs.get(run.id)
    return tree(stored), exported_view(stored, spans)


@pytest.mark.parametrize("iterations", [5, 1], ids=["succeeds", "stops_at_max_iterations"])
async def test_the_lean_recorder_keeps_what_the_sdk_keeps(
    openai_server, agents_dir, make_runtime, monkeypatch, iterations
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=TOOLS,
        guardrails={"input": [PII], "output": [PII], "tool_results": [PII]},
        orchestration={"pattern": "react", "max_iterations": iterations, "timeout_seconds": 30},
    )
    runtime = make_runtime(env={CAPTURE_ENV: "true"})

    # built from the environment as it is now (an earlier test may have left a tracing built
    # from another), like the SDK's below
    assert provider.rebuild().recorder is not None  # no exporter, no OTEL_* span settings
    lean = await one_run(openai_server, runtime, "lean", iterations)
    with sdk_tracer(monkeypatch):
        assert provider.tracing().recorder is None
        sdk = await one_run(openai_server, runtime, "sdk", iterations)

    assert lean[0] == sdk[0]
    assert lean[1] == sdk[1]
    names = [record[0] for record in lean[0]]
    assert "astromesh.screen_tool_result" in names and names[-1] == "invoke_agent helper"
    statuses = [(record[0], record[3]) for record in lean[0]]
    assert ("execute_tool add", "error") in statuses  # the call with a bad argument
    assert statuses[-1][1] == ("ok" if iterations == 5 else "error")
    assert any(
        key == "gen_ai.input.messages" and "[EMAIL]" in value
        for record in lean[0]
        for key, value in record[5]
    )  # content captured, redacted
