"""``GET /v1/traces`` and ``GET /v1/traces/{trace_id}``: the traces kept with runs, in
upstream's shapes (its ``astromeshctl traces`` and ``trace`` read them; ``/v1/traces/`` with
the slash works too). ``GET /v1/metrics``, for ``astromeshctl metrics`` and ``cost``, is
served from the usage ledger by :mod:`astromesh.channels.rest.usage`.

Traces are tenant data: both routes read the caller's tenant only (an admin's ``?tenant=``
names another), and a key limited to some agents sees those agents' traces only. Another
tenant's trace is the same 404 as an unknown id.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from astromesh.channels.access import require_agent
from astromesh.channels.openapi import AUTHENTICATED, errors
from astromesh.channels.rest.runs import visible_run
from astromesh.channels.rest.usage import AgentParam, FromParam, ToParam
from astromesh.channels.security import CurrentPrincipal, ServicesDep
from astromesh.errors import NotFoundError
from astromesh.runs.state import RunState, RunStatus
from astromesh.runs.trace_views import trace_document, trace_item

router = APIRouter(tags=["observability"])

SCAN_LIMIT = 1000
"""Runs read (newest first) to answer one listing, or to find a trace id that is not a run's
own (a run started under a caller's ``traceparent`` has the caller's trace id)."""


@router.get("/v1/traces", responses=errors(AUTHENTICATED))
async def list_traces(
    principal: CurrentPrincipal,
    services: ServicesDep,
    agent: AgentParam = None,
    session_id: Annotated[str | None, Query(description="Only this session's runs")] = None,
    status: Annotated[
        RunStatus | None, Query(description="Only runs that ended (or are) in this status")
    ] = None,
    since: FromParam = None,
    until: ToParam = None,
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many, newest first")] = 20,
) -> dict[str, Any]:
    """The tenant's recent runs' traces, newest first: ``{"traces": [{trace_id, run_id,
    agent, session_id, started_at, duration_ms, status, run_status, spans, tokens_in,
    tokens_out, cost}]}`` (root runs only: a child run is part of its parent's trace)."""
    if agent:
        require_agent(principal, agent)
    start, end = _instant(since, False), _instant(until, True)
    runs = await (await services.runtime.state()).runs.list_runs(
        agent=agent or None, session_id=session_id, limit=SCAN_LIMIT
    )
    found: list[dict[str, Any]] = []
    for run in runs:
        if (
            run.parent_run_id is None
            and run.trace is not None
            and (run.tenant == principal.tenant)
            and principal.allows(run.agent)
            and (status is None or run.status is status)
            and (start is None or _utc(run.created_at) >= start)
            and (end is None or _utc(run.created_at) < end)
        ):
            found.append(trace_item(run))
            if len(found) >= limit:
                break
    return {"traces": found}


@router.get("/v1/traces/{trace_id}", responses=errors(AUTHENTICATED, 404))
async def get_trace(
    trace_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> dict[str, Any]:
    """One trace: its root run's entry, the runs in it and their spans as a tree
    (upstream's ``{trace_id, agent, spans: [{name, duration_ms, children...}]}``). The id
    is a trace id or a run id."""
    runs = (await services.runtime.state()).runs
    root = await _find_root(runs, trace_id)
    if root is None:
        raise NotFoundError(f"trace {trace_id!r} not found")
    try:
        await visible_run(services, principal, root.id)
    except NotFoundError:
        raise NotFoundError(f"trace {trace_id!r} not found") from None

    async def load(run_id: str) -> RunState | None:
        try:
            child = await runs.get(run_id)
        except NotFoundError:
            return None
        return child if child.tenant == root.tenant else None

    return await trace_document(root, load)


async def _find_root(runs: Any, trace_id: str) -> RunState | None:
    """The run a trace id (or run id) names: the run itself, the run whose id is the trace
    id's digits, else the newest root run carrying that trace id."""
    if len(trace_id) > 200:
        return None
    for candidate in (trace_id, f"run_{trace_id}"):
        try:
            run = await runs.get(candidate)
        except NotFoundError:
            continue
        if candidate == trace_id or (run.trace and run.trace.trace_id == trace_id):
            return run
    for run in await runs.list_runs(limit=SCAN_LIMIT):
        if run.parent_run_id is None and run.trace and run.trace.trace_id == trace_id:
            return run
    return None


def _instant(moment: date | datetime | None, end: bool) -> datetime | None:
    """A ``from`` / ``to`` bound as a UTC instant (a ``to`` date includes its whole day)."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return _utc(moment)
    day = moment + timedelta(days=1) if end else moment
    return datetime.combine(day, time(), tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
