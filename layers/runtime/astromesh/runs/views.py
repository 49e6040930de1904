"""How a run is shown to callers: the upstream ``/v1`` run response and friends."""

from __future__ import annotations

from typing import Any

from astromesh.runs.state import RunState


def run_response(run: RunState) -> dict[str, Any]:
    """The ``POST /v1/agents/{name}/run`` body: upstream's fields plus ``run_id``/``status``."""
    return {
        "answer": run.answer or "",
        "steps": [step.model_dump(mode="json") for step in run.steps],
        "usage": {
            "tokens_in": run.usage.tokens_in,
            "tokens_out": run.usage.tokens_out,
            "cost": round(run.usage.cost, 8),
            "model": run.usage.model,
            "by_model": [line.model_dump() for line in run.usage.by_model],
        },
        "trace": trace_summary(run),
        "data": run.data,
        "chain": run.chain,
        "run_id": run.id,
        "status": run.status.value,
        "session_id": run.session_id,
        "error": run.error,
    }


def trace_summary(run: RunState) -> dict[str, Any] | None:
    """The run's ``trace``: its trace id and a summary of the spans kept with it (the spans
    themselves are at ``GET /v1/traces/{trace_id}``)."""
    context = run.trace
    if context is None:
        return None
    operations: dict[str, int] = {}
    for span in context.spans:
        operation = span["attributes"].get("gen_ai.operation.name") or span["name"]
        operations[operation] = operations.get(operation, 0) + 1
    return {
        "trace_id": context.trace_id,
        "span_id": context.span_id,
        "parent_span_id": context.parent_span_id,
        "traceparent": context.traceparent,
        "spans": len(context.spans),
        "dropped_spans": context.dropped,
        "operations": operations,
    }
