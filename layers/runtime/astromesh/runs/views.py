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
        "trace": None,
        "data": run.data,
        "chain": run.chain,
        "run_id": run.id,
        "status": run.status.value,
        "session_id": run.session_id,
        "error": run.error,
    }
