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
from itertools import islice
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

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
        self.hold(run_id, span_record(span))

    def hold(self, run_id: str, record: SpanRecord) -> None:
        """Hold one finished span's record for ``run_id`` (bounded)."""
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
    context = span.context
    parent = span.parent
    status = span.status
    start = span.start_time or 0
    record: SpanRecord = {
        "name": span.name,
        "span_id": f"{context.span_id:016x}" if context else "",
        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else None,
        "kind": _KIND_NAMES[span.kind],
        "start_ns": start,
        "end_ns": span.end_time or start,
        "status": "error" if status.status_code is StatusCode.ERROR else "ok",
        "attributes": bounded_attributes(span.attributes or {}),
    }
    if status.description:
        record["error"] = _cut(status.description)
    return record


_KIND_NAMES = {kind: kind.name.lower() for kind in SpanKind}
"""``SpanKind.INTERNAL`` -> ``"internal"``, looked up rather than built for every span."""


def bounded_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """At most :data:`MAX_ATTRIBUTES` attributes, strings cut, sequences made lists."""
    items = attributes.items()
    if len(attributes) > MAX_ATTRIBUTES:  # rare: no copy of the usual few
        items = islice(items, MAX_ATTRIBUTES)
    kept: dict[str, Any] = {}
    for key, value in items:
        kind = type(value)
        if kind is str:  # the usual ones first, by exact type
            kept[key] = value if len(value) <= MAX_ATTRIBUTE_CHARS else _cut(value)
        elif kind is int or kind is float or kind is bool:
            kept[key] = value
        elif isinstance(value, str):
            kept[key] = _cut(value)
        elif isinstance(value, bool | int | float):
            kept[key] = value
        else:
            kept[key] = [_cut(v) if isinstance(v, str) else v for v in islice(value, 32)]
    return kept


def _cut(text: str) -> str:
    if len(text) <= MAX_ATTRIBUTE_CHARS:
        return text
    return text[: MAX_ATTRIBUTE_CHARS - 1] + "…"
