"""Finished spans held per run until the process that recorded them keeps them with the run.

A span processor on the runtime's provider (:mod:`astromesh.telemetry.provider`; importing
this module imports the SDK). Each finished span is turned into a small JSON record and held
under the run it was recorded for (the run :func:`~astromesh.telemetry.context.run_scope`
names); the executor takes them into the run document before it saves it
(:func:`~astromesh.telemetry.context.keep_spans`). Records are bounded: string attributes are
cut to :data:`MAX_ATTRIBUTE_CHARS`, at most :data:`MAX_ATTRIBUTES` per span, and a run holds
at most :data:`~astromesh.runs.trace.MAX_SPANS_PER_RUN` waiting here.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode

from astromesh.runs.trace import MAX_SPANS_PER_RUN
from astromesh.telemetry.scope import current_run_id

MAX_ATTRIBUTE_CHARS = 4096
"""A string attribute kept with a run is cut to this many characters (captured content is
the usual long one); the exported span has the SDK's own limits."""
MAX_ATTRIBUTES = 48
"""Attributes kept per span record."""

SpanRecord = dict[str, Any]


class RunSpans(SpanProcessor):
    """Holds span records by run id until :meth:`take` hands them over."""

    def __init__(self) -> None:
        self._held: dict[str, list[SpanRecord]] = {}
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        run_id = current_run_id()
        if run_id is None:  # recorded outside any run (a model probe, an ingestion)
            return
        record = span_record(span)
        with self._lock:
            held = self._held.setdefault(run_id, [])
            if len(held) < MAX_SPANS_PER_RUN:
                held.append(record)

    def take(self, run_id: str) -> list[SpanRecord]:
        """The records held for ``run_id``, no longer held here."""
        with self._lock:
            return self._held.pop(run_id, [])

    def shutdown(self) -> None:
        with self._lock:
            self._held.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def span_record(span: ReadableSpan) -> SpanRecord:
    """The JSON record of one finished span, as stored with its run."""
    context = span.get_span_context()
    parent = span.parent
    record: SpanRecord = {
        "name": span.name,
        "span_id": f"{context.span_id:016x}" if context else "",
        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else None,
        "kind": span.kind.name.lower(),
        "start_ns": span.start_time or 0,
        "end_ns": span.end_time or span.start_time or 0,
        "status": "error" if span.status.status_code is StatusCode.ERROR else "ok",
        "attributes": bounded_attributes(span.attributes or {}),
    }
    if span.status.description:
        record["error"] = _cut(span.status.description)
    return record


def bounded_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """At most :data:`MAX_ATTRIBUTES` attributes, strings cut, sequences made lists."""
    kept: dict[str, Any] = {}
    for key, value in list(attributes.items())[:MAX_ATTRIBUTES]:
        if isinstance(value, str):
            kept[key] = _cut(value)
        elif isinstance(value, bool | int | float):
            kept[key] = value
        else:
            kept[key] = [_cut(v) if isinstance(v, str) else v for v in list(value)[:32]]
    return kept


def _cut(text: str) -> str:
    if len(text) <= MAX_ATTRIBUTE_CHARS:
        return text
    return text[: MAX_ATTRIBUTE_CHARS - 1] + "…"
