"""A lean tracer for the spans kept with runs, used when nothing is exported.

The SDK's tracer does work only an exporter needs on every span: a sampler consulted, a
``BoundedAttributes`` with its lock and a cleaning pass, a span lock, a processor fan-out and
a ``ReadableSpan`` copy at the end (about 14 µs a span; a ReAct iteration records five). When
no exporter is configured, the only consumer is the run's span records
(:class:`~astromesh.telemetry.buffer.RunSpans`), so :class:`Recorder` makes the same spans
itself: the same ids (the provider's id generator, the fixed ids of a run's root span), the
same parent-based sampling decision, the same cleaned attributes in the same order, and the
record built by the same :func:`~astromesh.telemetry.buffer.span_record`.
:mod:`~astromesh.telemetry.provider` uses it only when no ``OTEL_*`` setting could make the SDK
record differently (an exporter, a sampler, span or attribute limits, the SDK disabled).

Processors added with :meth:`Recorder.add_span_processor` (tests' in-memory exporter) get each
finished span as the SDK's ``ReadableSpan`` (``on_end`` only).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from time import time_ns
from traceback import format_exception
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from astromesh.telemetry.buffer import RunSpans, span_record
from astromesh.telemetry.scope import current_run_id

_PLAIN = (str, int, float, bool)
"""Attribute value types the SDK keeps as they are (no string limit: see the module doc)."""
_MISSING = object()
_UNSET = Status(StatusCode.UNSET)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_ROOT_FLAGS = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)


class RecordedSpan(trace.Span):
    """A span as :class:`Recorder` records it; read by ``span_record`` like a ``ReadableSpan``
    (``name``, ``context``, ``parent``, ``kind``, ``start_time``, ``end_time``, ``status``,
    ``attributes``)."""

    __slots__ = (
        "_recorder",
        "attributes",
        "context",
        "end_time",
        "events",
        "kind",
        "links",
        "name",
        "parent",
        "start_time",
        "status",
    )

    def __init__(
        self,
        recorder: Recorder,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        start_time: int,
        links: Sequence[trace.Link],
    ) -> None:
        self._recorder = recorder
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.start_time = start_time
        self.end_time: int | None = None
        self.status = _UNSET
        self.events: list[Event] = []
        self.links = links

    def get_span_context(self) -> SpanContext:
        return self.context

    def set_attribute(self, key: str, value: Any) -> None:
        if self.end_time is None:
            _set(self.attributes, key, value, self._recorder.max_attributes)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self.end_time is None:
            for key, value in attributes.items():
                _set(self.attributes, key, value, self._recorder.max_attributes)

    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
    ) -> None:
        if self.end_time is None:
            cleaned = BoundedAttributes(attributes=attributes, immutable=True)
            self.events.append(Event(name, cleaned, timestamp or time_ns()))

    def add_link(self, context: SpanContext, attributes: Mapping[str, Any] | None = None) -> None:
        if self.end_time is None and context.is_valid:
            self.links = (*self.links, trace.Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """The SDK's rules: an ``OK`` status is final, ``UNSET`` is ignored."""
        if self.end_time is not None or self.status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self.status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """Not used by the runtime (its spans are opened with ``record_exception=False``);
        the exception's type and message as an event, for callers that do."""
        kind = type(exception)
        event = {
            "exception.type": kind.__qualname__
            if kind.__module__ in ("", "builtins")
            else f"{kind.__module__}.{kind.__qualname__}",
            "exception.message": str(exception),
            "exception.stacktrace": "".join(format_exception(exception)),
            "exception.escaped": str(escaped),
            **(attributes or {}),
        }
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is None:
            self.end_time = end_time if end_time is not None else time_ns()
            self._recorder.finished(self)

    def readable(self) -> ReadableSpan:
        """The span as the SDK's processors take it."""
        recorder = self._recorder
        return ReadableSpan(
            name=self.name,
            context=self.context,
            parent=self.parent,
            resource=recorder.resource,
            attributes=BoundedAttributes(attributes=self.attributes, immutable=True),
            events=tuple(self.events),
            links=tuple(self.links),
            kind=self.kind,
            status=self.status,
            start_time=self.start_time,
            end_time=self.end_time,
            instrumentation_scope=recorder.scope,
        )


def _set(attributes: dict[str, Any], key: str, value: Any, limit: int) -> None:
    """Set one attribute as ``BoundedAttributes`` would: cleaned, moved last when set again,
    the oldest dropped past ``limit``."""
    if not key or not isinstance(key, str):  # dropped by the SDK too (with a warning)
        return
    if type(value) not in _PLAIN:
        cleaned = BoundedAttributes(attributes={key: value}, immutable=False)
        if key not in cleaned:
            return
        value = cleaned[key]
    if attributes.pop(key, _MISSING) is _MISSING and len(attributes) >= limit:
        del attributes[next(iter(attributes))]
    attributes[key] = value


class Recorder(trace.Tracer):
    """A tracer whose spans go straight to the run records (see the module doc)."""

    def __init__(
        self,
        buffer: RunSpans,
        ids: IdGenerator,
        resource: Resource,
        scope: InstrumentationScope,
        max_attributes: int,
    ) -> None:
        self.buffer = buffer
        self.ids = ids
        self.resource = resource
        self.scope = scope
        self.max_attributes = max_attributes
        self.processors: tuple[SpanProcessor, ...] = ()

    def add_span_processor(self, processor: SpanProcessor) -> None:
        self.processors = (*self.processors, processor)

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[trace.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        """A recording span under the current (or ``context``'s) span; the SDK's default
        parent-based sampling: a span under a parent that was not sampled records nothing."""
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        ids = self.ids
        if parent is not None and parent.is_valid:
            if not parent.trace_flags.sampled:
                span_id = ids.generate_span_id()
                flags = TraceFlags(parent.trace_flags & TraceFlags.RANDOM_TRACE_ID)
                return trace.NonRecordingSpan(
                    SpanContext(parent.trace_id, span_id, False, flags, parent.trace_state)
                )
            trace_id = parent.trace_id
            flags = _ROOT_FLAGS if parent.trace_flags & TraceFlags.RANDOM_TRACE_ID else _SAMPLED
            state = parent.trace_state
        else:
            parent = None
            trace_id = ids.generate_trace_id()
            flags = _ROOT_FLAGS if ids.is_trace_id_random() else _SAMPLED
            state = None
        span_context = SpanContext(trace_id, ids.generate_span_id(), False, flags, state)
        kept: dict[str, Any] = {}
        if attributes:
            limit = self.max_attributes
            fits = len(attributes) <= limit  # then no key is dropped: a plain value goes in
            for key, value in attributes.items():
                if fits and type(value) in _PLAIN and type(key) is str and key:
                    kept[key] = value
                else:
                    _set(kept, key, value, limit)
        return RecordedSpan(
            self,
            name,
            span_context,
            parent,
            kind,
            kept,
            start_time if start_time is not None else time_ns(),
            tuple(links) if links else (),
        )

    @contextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[trace.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current

    def finished(self, span: RecordedSpan) -> None:
        """Hold the span's record for the run being worked on (none outside a run), and hand
        it to the added processors."""
        run_id = current_run_id()
        if run_id is not None:
            self.buffer.hold(run_id, span_record(span))  # type: ignore[arg-type]
        if self.processors:
            readable = span.readable()
            for processor in self.processors:
                processor.on_end(readable)
