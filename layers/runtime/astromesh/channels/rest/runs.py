"""Runs by id: read (status, result) and cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from astromesh.auth import Principal
from astromesh.channels.openapi import AGENT, AUTHENTICATED, RUNS, WITH_BODY, errors
from astromesh.channels.schemas import (
    RunCancelled,
    RunResponse,
    ToolOutputsRequest,
)
from astromesh.channels.security import CurrentPrincipal, ServicesDep
from astromesh.channels.views import run_view
from astromesh.errors import NotFoundError
from astromesh.runs.state import RunState
from astromesh.tools import client as client_tools

router = APIRouter(tags=["runs"])


async def visible_run(services: ServicesDep, principal: Principal, run_id: str) -> RunState:
    """The run, if it is the key's tenant's (any tenant's for an admin) and the key may use
    its agent; otherwise the same 404 as an unknown id (another tenant's run ids are not
    confirmed to exist)."""
    run = await (await services.runtime.state()).runs.get(run_id)
    mine = run.tenant == principal.tenant or principal.is_admin
    if not principal.allows(run.agent) or not mine:
        raise NotFoundError(f"run {run_id!r} not found")
    return run


@router.get("/v1/runs/{run_id}", response_model=RunResponse, responses=errors(AUTHENTICATED, AGENT))
async def get_run(run_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Any:
    """The run as the run route answers it, plus agent, query and timestamps."""
    return run_view(await visible_run(services, principal, run_id))


@router.post(
    "/v1/runs/{run_id}/cancel",
    response_model=RunCancelled,
    responses=errors(AUTHENTICATED, AGENT, 409),
)
async def cancel_run(
    run_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> RunCancelled:
    """Mark the run cancelled; its loop stops before its next tool calls (409 if it ended)."""
    await visible_run(services, principal, run_id)
    run = await services.launcher.cancel(run_id)
    return RunCancelled(run_id=run.id, status=run.status.value)


@router.post(
    "/v1/runs/{run_id}/tool_outputs",
    response_model=RunResponse,
    responses=errors(AUTHENTICATED, WITH_BODY, AGENT, RUNS),
)
async def submit_tool_outputs(
    run_id: str, body: ToolOutputsRequest, principal: CurrentPrincipal, services: ServicesDep
) -> Any:
    """Answer a ``requires_action`` run's client tool calls and continue it to its end (or
    its next pause); 409 when the run is not waiting, 422 when outputs do not match."""
    run = await visible_run(services, principal, run_id)
    catalog = await services.catalog()
    agent = await catalog.agent(await catalog.entry(run.agent, tenant=run.tenant))
    finished = await client_tools.submit_tool_outputs(
        run_id,
        body.tool_outputs,
        runs=(await services.runtime.state()).runs,
        agent=agent,
        resume=lambda paused: services.runtime.resume(paused, agent),
    )
    return run_view(finished)
