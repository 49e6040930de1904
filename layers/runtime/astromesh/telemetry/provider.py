"""The tracer provider of the runtime's spans, built on first use.

Nothing here imports the OpenTelemetry SDK at module load: a handler that never records a span
(``ws_connect``, a webhook that only acknowledges) never pays for it. The provider is built
by the first span a process records, and then always feeds the spans kept with each run
(:class:`~astromesh.telemetry.buffer.RunSpans`); an OTLP exporter (http/protobuf, batched) is
added only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is
set, and imported only then. Without an exporter (and without an ``OTEL_*`` setting that
changes what the SDK records) the runtime's spans are made by the lean
:class:`~astromesh.telemetry.recorder.Recorder` rather than the provider's tracer: it keeps
the same records for a fraction of the cost.

The provider is the runtime's own rather than the process-global one, so spans kept with runs
never depend on what else the process configured; it reads the usual ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_EXPORTER_OTLP_*`` settings.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import Tracer

    from astromesh.telemetry.buffer import RunSpans
    from astromesh.telemetry.recorder import Recorder

logger = logging.getLogger("astromesh.telemetry")

SERVICE_NAME = "astromesh"
"""``service.name`` unless ``OTEL_SERVICE_NAME`` says otherwise."""
ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""Either one turns OTLP export on (the exporter reads both, the traces one first)."""
FLUSH_TIMEOUT_MS = 2000
"""How long the end of a Lambda invocation waits for the batch to be sent."""

_forced_ids: ContextVar[tuple[int, int] | None] = ContextVar("astromesh_forced_ids", default=None)


LEAN_BLOCKERS = (
    "OTEL_TRACES_SAMPLER",
    "OTEL_SDK_DISABLED",
    "OTEL_SPAN_",
    "OTEL_ATTRIBUTE_",
    "OTEL_EVENT_",
    "OTEL_LINK_",
)
"""Settings (names starting so) that change what the SDK records: with any of them set, the
spans are made by the SDK's tracer, not the lean :class:`~astromesh.telemetry.recorder.Recorder`
(which records what the SDK does with its defaults)."""


class _Tracing:
    """What one process built: the provider, its run-span buffer, whether it exports, and the
    tracer the runtime's spans are started with (the lean recorder when nothing is exported)."""

    def __init__(
        self,
        provider: TracerProvider,
        buffer: RunSpans,
        exporting: bool,
        recorder: Recorder | None = None,
    ) -> None:
        self.provider = provider
        self.buffer = buffer
        self.exporting = exporting
        self.recorder = recorder
        self.tracer: Tracer = recorder if recorder is not None else provider.get_tracer("astromesh")

    def add_span_processor(self, processor: SpanProcessor) -> None:
        """Hand every span finished from now on to ``processor`` too (tests' in-memory
        exporter), whichever tracer records them."""
        self.provider.add_span_processor(processor)
        if self.recorder is not None:
            self.recorder.add_span_processor(processor)


_built: _Tracing | None = None


def tracing() -> _Tracing:
    """The process's tracing, built on first call (imports the SDK, and the OTLP exporter
    when an endpoint is configured)."""
    global _built
    if _built is None:
        _built = _build(dict(os.environ))
    return _built


def built() -> _Tracing | None:
    """The process's tracing if something recorded a span already (nothing is built here)."""
    return _built


def _build(env: dict[str, str]) -> _Tracing:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    from astromesh.telemetry.buffer import RunSpans

    class RunIds(RandomIdGenerator):
        """Random ids, except for a run's root span, whose ids were fixed (and referenced
        by every span of the run) when the run was created: see :func:`fixed_ids`."""

        def generate_span_id(self) -> int:
            forced = _forced_ids.get()
            return forced[1] if forced is not None else random.getrandbits(64) or 1

        def generate_trace_id(self) -> int:
            forced = _forced_ids.get()
            return forced[0] if forced is not None else random.getrandbits(128) or 1

    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", SERVICE_NAME)})
    ids = RunIds()
    provider = TracerProvider(resource=resource, id_generator=ids)
    buffer = RunSpans()
    provider.add_span_processor(buffer)
    # Nothing exported, nothing that changes what the SDK records: the lean recorder.
    lean = not any(name.startswith(LEAN_BLOCKERS) for name in env)
    recorder = _recorder(buffer, ids, resource) if lean else None
    exporting = any(env.get(name) for name in ENDPOINT_ENVS)
    if exporting:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:  # the Lambda runtime layer leaves it out (infra/bundling.py)
            logger.warning(
                "otlp | %s is set but opentelemetry-exporter-otlp-proto-http is not "
                "installed: spans are kept with the runs, not exported",
                next(n for n in ENDPOINT_ENVS if env.get(n)),
            )
            return _Tracing(provider, buffer, False, recorder)
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        logger.info(
            "otlp | exporting spans to %s", next(env[n] for n in ENDPOINT_ENVS if env.get(n))
        )
        return _Tracing(provider, buffer, True)
    return _Tracing(provider, buffer, False, recorder)


def _recorder(buffer: RunSpans, ids: IdGenerator, resource: Resource) -> Recorder:
    from opentelemetry.sdk.trace import SpanLimits
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from astromesh.telemetry.recorder import Recorder

    limit = SpanLimits().max_span_attributes
    return Recorder(buffer, ids, resource, InstrumentationScope("astromesh"), limit or 0)


@contextmanager
def fixed_ids(trace_id: int, span_id: int) -> Iterator[None]:
    """Spans started in the block get these ids (the run's root span, recorded last)."""
    token = _forced_ids.set((trace_id, span_id))
    try:
        yield
    finally:
        _forced_ids.reset(token)


def flush() -> None:
    """Send what the batch holds (the end of a Lambda invocation: the container may be frozen
    right after). Free when nothing was recorded or nothing is exported."""
    if _built is not None and _built.exporting:
        _built.provider.force_flush(FLUSH_TIMEOUT_MS)


def rebuild() -> _Tracing:
    """Shut the process's tracing down and build it again from the environment as it is now
    (tests that turn export on or off; a process that changed its ``OTEL_*`` settings)."""
    global _built
    if _built is not None:
        _built.provider.shutdown()
        _built = None
    return tracing()
