"""A run's trace context and the spans kept with it.

One trace per run: the context (W3C ids) is fixed when the run is created and stored in the
run record, so every process that later works on the run (a Lambda task, a tool executor, a
child run) continues the same trace, whatever the state machine's payloads carry. The spans
each process records are kept here too (bounded), so a trace can be read back from the run
store on any backend, however many functions produced it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field
from pydantic_core import PydanticSerializationError, to_json

from astromesh.runs.growing import GrowingList, growing

MAX_SPANS_PER_RUN = 512
"""Spans kept per run document; later ones are counted in ``dropped`` instead. A ReAct
iteration makes about six (step, chat, act, execute_tool, observe, a guardrail), so this holds
some eighty iterations; child runs keep their own."""
MAX_TRACE_BYTES = 256 * 1024
"""JSON bytes of spans kept per run document, whatever their number: every Step Functions task
loads and saves the document, and captured content makes spans large."""

_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
"""A span's JSON for a span :func:`_json_size` cannot encode (text with lone surrogates)."""


def _json_size(span: dict[str, Any]) -> int:
    """Bytes of ``span`` as JSON: pydantic's encoder takes a fifth of the stdlib's time
    (~0.6 against ~2.6 µs a span, five or six spans an iteration)."""
    try:
        return len(to_json(span, fallback=str))
    except (PydanticSerializationError, UnicodeEncodeError):
        return len(_encode(span).encode("utf-8", "surrogatepass"))


class RunTrace(BaseModel):
    """``RunState.trace``: where the run sits in its trace, and its recorded spans.

    ``span_id`` is the run's own ``invoke_agent`` span, recorded when the run ends but
    referenced as the parent by every span before; ``parent_span_id`` is the span the run was
    started under (the caller's ``traceparent``, or the parent run's ``execute_tool`` span).
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    spans: Annotated[list[dict[str, Any]], AfterValidator(growing)] = Field(
        default_factory=GrowingList
    )
    dropped: int = 0
    """Spans recorded past :data:`MAX_SPANS_PER_RUN` or :data:`MAX_TRACE_BYTES`, not kept."""
    size: int = 0
    """JSON bytes of ``spans``."""

    @property
    def traceparent(self) -> str:
        """The W3C ``traceparent`` of the run's root span (sampled)."""
        return f"00-{self.trace_id}-{self.span_id}-01"

    def keep(self, spans: list[dict[str, Any]]) -> None:
        """Append ``spans`` up to the bounds; count the rest as dropped."""
        # Counted in locals and set once: a pydantic field assignment costs a Python call.
        kept, total, dropped = self.spans, self.size, self.dropped
        for span in spans:
            size = _json_size(span)
            if len(kept) >= MAX_SPANS_PER_RUN or total + size > MAX_TRACE_BYTES:
                dropped += 1
                continue
            kept.append(span)
            total += size
        if total != self.size:
            self.size = total
        if dropped != self.dropped:
            self.dropped = dropped
