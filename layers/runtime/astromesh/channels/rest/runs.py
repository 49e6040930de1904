"""Runs by id: read (status, result) and cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from astromesh.auth import Principal
from astromesh.channels.errors import NotAvailable
from astromesh.channels.schemas import ErrorResponse, RunCancelled, RunResponse
from astromesh.channels.security import CurrentPrincipal, ServicesDep
from astromesh.channels.views import run_view
from astromesh.errors import NotFoundError
from astromesh.runs.state import RunState

router = APIRouter(tags=["runs"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (401, 404, 409)
}


async def _visible_run(services: ServicesDep, principal: Principal, run_id: str) -> RunState:
    """The run, if it is the key's tenant's and the key may use its agent; otherwise the
    same 404 as an unknown id (another tenant's run ids are not confirmed to exist)."""
    run = await (await services.runtime.state()).runs.get(run_id)
    if not principal.allows(run.agent) or run.tenant != principal.tenant:
        raise NotFoundError(f"run {run_id!r} not found")
    return run


@router.get("/v1/runs/{run_id}", response_model=RunResponse, responses=_ERRORS)
async def get_run(run_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Any:
    """The run as the run route answers it, plus agent, query and timestamps."""
    return run_view(await _visible_run(services, principal, run_id))


@router.post("/v1/runs/{run_id}/cancel", response_model=RunCancelled, responses=_ERRORS)
async def cancel_run(
    run_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> RunCancelled:
    """Mark the run cancelled; its loop stops before its next step (409 if it ended)."""
    await _visible_run(services, principal, run_id)
    run = await services.launcher.cancel(run_id)
    return RunCancelled(run_id=run.id, status=run.status.value)


@router.post(
    "/v1/runs/{run_id}/tool_outputs",
    status_code=501,
    responses={501: {"model": ErrorResponse}, **_ERRORS},
)
async def submit_tool_outputs(
    run_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> None:
    """Client tools (results supplied by the caller) are not built yet."""
    await _visible_run(services, principal, run_id)
    raise NotAvailable(
        "client_tools_not_available",
        "client tools are not built yet: no run waits for tool outputs",
    )
