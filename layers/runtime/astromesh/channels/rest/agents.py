"""Agents: list, describe, run (sync or async) and stream (Server-Sent Events)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from astromesh.chains import chain_graph
from astromesh.channels.access import runnable_agent, visible_entry
from astromesh.channels.errors import NotAvailable
from astromesh.channels.launcher import RunInput
from astromesh.channels.openapi import AGENT, AUTHENTICATED, RUNS, WITH_BODY, errors
from astromesh.channels.overrides import refuse_provider_override
from astromesh.channels.schemas import (
    AgentList,
    RunAccepted,
    RunRequest,
    RunResponse,
)
from astromesh.channels.security import (
    CatalogDep,
    CurrentPrincipal,
    ServicesDep,
    listing_tenant,
)
from astromesh.channels.views import agent_config, agent_summary
from astromesh.errors import AgentUnrunnable, NotFoundError
from astromesh.runs.events import RunEvent
from astromesh.runs.views import run_response

router = APIRouter(tags=["agents"])


@router.get("/v1/agents", response_model=AgentList, responses=errors(AUTHENTICATED))
async def list_agents(
    request: Request, principal: CurrentPrincipal, catalog: CatalogDep
) -> dict[str, Any]:
    """The agents this key may use: its tenant's registered agents and the file agents (an
    admin naming no ``?tenant=``: every tenant's, each with its ``tenant``). Agents that do
    not load (a file that fails to validate or to build here, a registered document that no
    longer validates) are listed as upstream lists them, ``status: draft`` with their
    ``error``; an admin also sees the file agents that cannot run under ``skipped``, each
    with its file, line, field and why."""
    entries, drafts = await catalog.listing(tenant=listing_tenant(request, principal))
    listed = [agent_summary(e) for e in entries if principal.allows(e.name)]
    listed += [d.summary() for d in drafts if principal.allows(d.name)]
    skipped = (
        [{"name": name, **issue.to_dict()} for name, issue in catalog.skipped().items()]
        if principal.is_admin
        else []
    )
    return {"agents": sorted(listed, key=lambda a: a["name"]), "skipped": skipped}


@router.get("/v1/agents/{name}", responses=errors(AUTHENTICATED, AGENT))
async def describe_agent(
    name: str, principal: CurrentPrincipal, catalog: CatalogDep
) -> dict[str, Any]:
    """The agent's configuration, plus its status, origin and registry revision; a file
    agent that cannot run here also has ``unrunnable``: where its file is at fault and why.
    An agent that does not load at all (its document fails to validate) is answered as
    ``GET /v1/agents`` lists it, ``status: draft`` with its ``error``, as upstream answers
    with the configuration it could not deploy, rather than a 404 for an agent that is
    there."""
    try:
        entry = await visible_entry(catalog, principal, name)
    except (NotFoundError, AgentUnrunnable):
        _, drafts = await catalog.listing(tenant=principal.tenant)
        for draft in drafts:
            if draft.name == name:
                return draft.summary()
        raise
    config = agent_config(entry)
    issue = catalog.skipped().get(name) if entry.origin == "file" else None
    if issue is not None:
        config["unrunnable"] = issue.to_dict()
    return config


@router.get("/v1/agents/{name}/chain", responses=errors(AUTHENTICATED, AGENT))
@router.get("/v1/agents/{name}/chain/", include_in_schema=False)
async def agent_chain(
    name: str, principal: CurrentPrincipal, catalog: CatalogDep, services: ServicesDep
) -> dict[str, Any]:
    """The agent's expanded chain, without running anything (upstream's shape: ``agent``,
    ``mode``, ``max_depth``, ``links`` with each link's ``depth``, ``via``, ``when`` and
    ``default``); 404 when the agent is unknown or declares no ``spec.chain``."""
    entry = await visible_entry(catalog, principal, name)
    documents = {**services.runtime.config.agents, name: entry.document}
    graph = chain_graph(name, documents)
    if graph is None:
        raise NotFoundError(f"agent {name!r} does not declare spec.chain")
    return graph


@router.post(
    "/v1/agents/{name}/run",
    response_model=RunResponse,
    responses={
        202: {"model": RunAccepted, "description": "Started (async): the run's id"},
        **errors(AUTHENTICATED, WITH_BODY, AGENT, RUNS, 501),
    },
)
async def run_agent(
    name: str,
    body: RunRequest,
    http: Request,
    principal: CurrentPrincipal,
    services: ServicesDep,
    catalog: CatalogDep,
    mode: Annotated[
        Literal["sync", "async"] | None, Query(description="async: answer 202 at once")
    ] = None,
) -> Any:
    """Run the agent to completion (200), or start it and answer 202 with the run id."""
    refuse_provider_override(http)
    agent = await runnable_agent(catalog, principal, name)
    request = RunInput(body.query, body.session_id, body.context, principal.tenant)
    if mode == "async" or body.run_async:
        if services.settings.background_runs:
            run = await services.launcher.run_in_background(agent, request)
        elif services.settings.standard_machine_arn:
            run = await services.launcher.run_on_state_machine(agent, request)
        else:
            raise NotAvailable(
                "async_runs_unavailable",
                "async runs need a Standard state machine (ASTROMESH_SFN_STANDARD_ARN),"
                " which this deployment does not have; call without mode=async, or use the"
                " stream route",
            )
        accepted = RunAccepted(run_id=run.id, agent=name, session_id=run.session_id)
        return JSONResponse(accepted.model_dump(), status_code=202)
    run = await services.launcher.run(agent, request)
    return JSONResponse(run_response(run))


@router.post(
    "/v1/agents/{name}/stream",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "One SSE event per run event: `event: <type>` and `data: <frame>`"
            " (the WebSocket frames); the stream ends after `done`.",
        },
        **errors(AUTHENTICATED, WITH_BODY, AGENT, RUNS),
    },
)
async def stream_agent(
    name: str,
    body: RunRequest,
    http: Request,
    principal: CurrentPrincipal,
    services: ServicesDep,
    catalog: CatalogDep,
) -> StreamingResponse:
    """Run the agent and stream its events as Server-Sent Events."""
    refuse_provider_override(http)
    agent = await runnable_agent(catalog, principal, name)
    run, events = await services.launcher.start_stream(
        agent, RunInput(body.query, body.session_id, body.context, principal.tenant)
    )
    return StreamingResponse(
        _sse(events),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Run-Id": run.id},
    )


async def _sse(events: AsyncIterator[RunEvent]) -> AsyncIterator[bytes]:
    async for event in events:
        data = json.dumps(event.frame(), ensure_ascii=False, default=str)
        yield f"event: {event.type}\ndata: {data}\n\n".encode()
