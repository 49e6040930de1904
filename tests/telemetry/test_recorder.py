"""The lean recorder against the SDK's tracer, span by span: the same calls on both give the
same records and the same spans to an added processor (attributes set again move last, an OK
status is final, nothing changes after the end), and a parent that was not sampled records
nothing on either. Which one a process uses depends on its ``OTEL_*`` settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from astromesh.runs.state import RunState
from astromesh.telemetry import provider
from astromesh.telemetry.scope import run_scope

SDK_ENV = {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "128"}
"""A span setting at its default value: the SDK's tracer, recording what it does without it."""


@pytest.fixture
def both() -> Iterator[dict[str, Any]]:
    """A lean and an SDK tracing of this test's own (not the process's), each with an
    in-memory exporter added."""
    built = {"lean": provider._build({}), "sdk": provider._build(dict(SDK_ENV))}
    assert built["lean"].recorder is not None and built["sdk"].recorder is None
    for tracing in built.values():
        tracing.exporter = InMemorySpanExporter()
        tracing.add_span_processor(SimpleSpanProcessor(tracing.exporter))
    yield built
    for tracing in built.values():
        tracing.provider.shutdown()


def exercise(tracing: Any, run: RunState) -> list[dict[str, Any]]:
    """Every span call the runtime makes, and some it does not; the records kept for ``run``."""
    tracer = tracing.tracer
    with run_scope(run):
        outer = tracer.start_span("outer", attributes={"a": "x", "n": 1, "reasons": ["stop"]})
        token = otel_context.attach(trace.set_span_in_context(outer))
        inner = tracer.start_span("inner", attributes={"k": 1.5}, kind=trace.SpanKind.CLIENT)
        inner.set_attribute("a", "first")
        inner.set_attribute("b", True)
        inner.set_attribute("", "an empty key: dropped")
        inner.set_attribute("a", "again")  # set again: moved last, as BoundedAttributes does
        inner.set_attributes({"seq": (1, 2), "text": "y" * 5000})
        inner.add_event("something", {"e": 1})
        inner.set_status(Status(StatusCode.ERROR, "bad"))
        inner.update_name("inner renamed")
        inner.end()
        inner.set_attribute("late", 1)  # after the end: ignored
        inner.end()  # ended once
        otel_context.detach(token)
        outer.set_status(StatusCode.OK)
        outer.set_status(StatusCode.ERROR, "ignored: OK is final")
        outer.end()
        return tracing.buffer.take(run.id)


def without_ids(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {r["span_id"]: r["name"] for r in records}
    return [
        {
            **{k: v for k, v in r.items() if k not in ("span_id", "start_ns", "end_ns")},
            "parent_span_id": names.get(r["parent_span_id"], "run root"),
        }
        for r in records
    ]


def exported(tracing: Any) -> list[tuple[Any, ...]]:
    return [
        (
            s.name,
            s.kind,
            s.status.status_code,
            s.status.description,
            dict(s.attributes),
            [(e.name, dict(e.attributes)) for e in s.events],
            s.parent.span_id if s.parent else None,
            s.context.trace_id,
            s.end_time >= s.start_time,
        )
        for s in tracing.exporter.get_finished_spans()
    ]


def test_the_same_calls_record_the_same_spans(both):
    run = RunState(agent="a", query="q")
    lean, sdk = (exercise(both[kind], run) for kind in ("lean", "sdk"))

    assert without_ids(lean) == without_ids(sdk)
    assert [r["name"] for r in lean] == ["inner renamed", "outer"]
    inner = lean[0]
    assert list(inner["attributes"]) == ["k", "b", "a", "seq", "text"]
    assert inner["attributes"]["seq"] == [1, 2] and len(inner["attributes"]["text"]) == 4096
    assert (inner["kind"], inner["status"], inner["error"]) == ("client", "error", "bad")
    assert lean[1]["status"] == "ok" and "error" not in lean[1]
    assert lean[1]["parent_span_id"] == run.trace.span_id  # under the run's root span

    lean_spans, sdk_spans = exported(both["lean"]), exported(both["sdk"])
    assert [s[:6] for s in lean_spans] == [s[:6] for s in sdk_spans]
    assert lean_spans[0][4]["seq"] == (1, 2)  # cleaned as the SDK does: a tuple
    assert {s[7] for s in lean_spans + sdk_spans} == {int(run.trace.trace_id, 16)}
    assert lean_spans[1][6] == sdk_spans[1][6] == int(run.trace.span_id, 16)
    assert all(s[8] for s in lean_spans + sdk_spans)  # ended after they started


def test_nothing_is_recorded_under_a_parent_that_was_not_sampled(both):
    unsampled = trace.NonRecordingSpan(
        trace.SpanContext(7, 9, is_remote=True, trace_flags=trace.TraceFlags(0))
    )
    for tracing in both.values():
        span = tracing.tracer.start_span("x", context=trace.set_span_in_context(unsampled))
        assert not span.is_recording()
        assert span.get_span_context().trace_id == 7
        assert not span.get_span_context().trace_flags.sampled
        span.end()
        assert tracing.exporter.get_finished_spans() == ()


@pytest.mark.parametrize(
    ("env", "lean"),
    [
        ({}, True),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_RESOURCE_ATTRIBUTES": "a=b"}, True),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "100"}, False),
        ({"OTEL_SPAN_EVENT_COUNT_LIMIT": "3"}, False),
    ],
)
def test_the_lean_recorder_is_used_only_when_no_setting_changes_what_is_recorded(env, lean):
    tracing = provider._build(env)
    try:
        assert (tracing.recorder is not None) is lean
        assert (tracing.tracer is tracing.recorder) is lean
    finally:
        tracing.provider.shutdown()
