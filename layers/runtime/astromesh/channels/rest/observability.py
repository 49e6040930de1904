"""``GET /v1/traces`` and ``GET /v1/traces/{trace_id}``: upstream's ``astromeshctl traces``
and ``trace``. (``GET /v1/metrics``, for ``astromeshctl metrics`` and ``cost``, is served from
the usage ledger by :mod:`astromesh.channels.rest.usage`.)

A trace store and aggregated metrics are the observability issue's feature (issue 17:
OpenTelemetry GenAI traces, a trace per run across every Lambda). Until it lands, these
answer ``501`` with a code naming what is missing and where to look meanwhile, never a
``404`` that reads as "no such API" nor an empty list that reads as "nothing happened".
"""

from __future__ import annotations

from fastapi import APIRouter

from astromesh.channels.errors import NotAvailable
from astromesh.channels.openapi import AUTHENTICATED, errors
from astromesh.channels.security import CurrentPrincipal

router = APIRouter(tags=["observability"])

_TRACES = (
    "traces are not stored by this deployment yet (the trace store is the observability"
    " feature, issue 17); a run's own trace is in its response (trace) and in"
    " GET /v1/runs/{run_id}"
)


@router.get("/v1/traces", responses=errors(AUTHENTICATED, 501))
async def list_traces(_principal: CurrentPrincipal) -> None:
    """Not served yet: ``501 traces_unavailable``."""
    raise NotAvailable("traces_unavailable", _TRACES)


@router.get("/v1/traces/{trace_id}", responses=errors(AUTHENTICATED, 501))
async def get_trace(trace_id: str, _principal: CurrentPrincipal) -> None:
    """Not served yet: ``501 traces_unavailable``."""
    raise NotAvailable("traces_unavailable", _TRACES)
