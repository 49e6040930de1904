"""Workflows (upstream's ``/v1/workflows``): list, describe, register, run; runs, resume,
approve, reject; pending approvals.

Shapes are upstream's (docs/api.md). A run answers 200 with the finished run when it ends
within the request, else 202 with ``{"run_id", "status": "suspended" | "running"}``.
``status`` speaks upstream's words (``suspended`` for ``waiting`` and
``awaiting_approval``); ``state`` beside it is the precise one. Tenancy is the agents':
a key sees its tenant's registered workflows and the folder's, and only its tenant's runs
(an admin: any tenant's); another tenant's run is the same 404 as an unknown id.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from astromesh.auth import Principal
from astromesh.channels.access import require_agent, require_approver
from astromesh.channels.openapi import AGENT, AUTHENTICATED, RUNS, WITH_BODY, errors
from astromesh.channels.security import CatalogDep, CurrentPrincipal, ServicesDep, listing_tenant
from astromesh.config.workflow import RESERVED_NAMES, WorkflowDocument
from astromesh.errors import ValidationFailed
from astromesh.workflows.actions import Approved, Rejected
from astromesh.workflows.engine import WorkflowEngine
from astromesh.workflows.registration import registered_workflow
from astromesh.workflows.run import WorkflowRun

router = APIRouter(tags=["workflows"])


class WorkflowRunRequest(BaseModel):
    query: str = ""
    trigger: dict[str, Any] | None = None


class ResumeRequest(BaseModel):
    payload: dict[str, Any] = Field(default_factory=dict)


class DecisionRequest(BaseModel):
    approver: str = Field(min_length=1, max_length=200)
    comment: str | None = Field(None, max_length=4000)


class RegisterRequest(BaseModel):
    workflow: dict[str, Any]
    agents: list[dict[str, Any]] = Field(default_factory=list, max_length=32)
    rag_pipelines: list[dict[str, Any]] = Field(default_factory=list)


def describe(workflow: WorkflowDocument, origin: str) -> dict[str, Any]:
    """Upstream's description of a workflow, plus where it comes from."""
    spec = workflow.spec
    return {
        "name": workflow.name,
        "version": workflow.metadata.version,
        "namespace": workflow.metadata.namespace,
        "description": spec.description,
        "trigger": spec.trigger,
        "timeout_seconds": spec.deadline_seconds,
        "steps": [{"name": s.name, "type": s.type} for s in spec.steps],
        "origin": origin,
    }


def upstream_status(run: WorkflowRun) -> str:
    return "suspended" if run.status.is_suspended else run.status.value


def run_view(run: WorkflowRun, workflow: WorkflowDocument) -> dict[str, Any]:
    """Upstream's run record (``run_id``, ``workflow_name``, ``status``, ``current_index``,
    ``context``, ``error``) and ours: every step's state, the pending approval, times."""
    names = [s.name for s in workflow.spec.steps]
    steps = {name: state.model_dump(mode="json") for name, state in run.steps.items()}
    pending = run.pending_approval
    return {
        "run_id": run.id,
        "workflow_name": run.workflow,
        "status": upstream_status(run),
        "state": run.status.value,
        "current_index": names.index(run.cursor) if run.cursor in names else len(names),
        "context": {
            "trigger": run.trigger,
            "steps": {name: state.output for name, state in run.steps.items()},
        },
        "output": run.output,
        "error": run.error,
        "steps": steps,
        "pending_approval": pending.model_dump(mode="json", exclude={"task_token"})
        if pending
        else None,
        "tenant": run.tenant,
        "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(),
        "deadline": run.deadline.isoformat() if run.deadline else None,
        "wake_at": run.wake_at.isoformat() if run.wake_at else None,
    }


def finished_view(run: WorkflowRun) -> dict[str, Any]:
    """Upstream's answer to a finished run."""
    return {
        "run_id": run.id,
        "workflow_name": run.workflow,
        "status": run.status.value,
        "output": run.output,
        "error": run.error,
        "steps": {
            name: {"status": s.status.value, "output": s.output, "error": s.error}
            for name, s in run.steps.items()
        },
        "trace": None,
        "duration_ms": round((run.updated_at - run.created_at).total_seconds() * 1000, 1),
    }


def answer(run: WorkflowRun) -> JSONResponse:
    """200 with the finished run, else 202 with its id (it waits, or is still going)."""
    if run.status.is_terminal:
        return JSONResponse(finished_view(run))
    body = {"run_id": run.id, "status": upstream_status(run), "state": run.status.value}
    if run.pending_approval is not None:
        body["pending_approval"] = run.pending_approval.model_dump(
            mode="json", exclude={"task_token"}
        )
    return JSONResponse(body, status_code=202)


async def _visible(engine: WorkflowEngine, principal: Principal, run_id: str) -> WorkflowRun:
    return await engine.get_run(run_id, tenant=None if principal.is_admin else principal.tenant)


@router.get("/v1/workflows", responses=errors(AUTHENTICATED))
async def list_workflows(principal: CurrentPrincipal, services: ServicesDep) -> Any:
    """The workflows the key's tenant sees: the agents folder's and its registered ones."""
    engine = await services.workflows()
    listed = await engine.listing(tenant=principal.tenant)
    return {"workflows": [describe(doc, origin) for doc, origin in listed]}


@router.get("/v1/workflows/approvals", responses=errors(AUTHENTICATED))
async def list_approvals(
    request: Request,
    principal: CurrentPrincipal,
    services: ServicesDep,
    approver: str | None = None,
) -> Any:
    """Runs awaiting a decision (only those asking ``approver`` when given)."""
    engine = await services.workflows()
    runs = await engine.pending_approvals(
        tenant=listing_tenant(request, principal), approver=approver
    )
    return {
        "approvals": [
            {
                "run_id": r.id,
                "workflow_name": r.workflow,
                "step_name": r.pending_approval.step,
                "approver": r.pending_approval.approver,
                "prompt": r.pending_approval.prompt,
                "created_at": r.pending_approval.requested_at.isoformat(),
                "expires_at": r.pending_approval.expires_at.isoformat()
                if r.pending_approval.expires_at
                else None,
                "tenant": r.tenant,
            }
            for r in runs
            if r.pending_approval is not None
        ]
    }


@router.post("/v1/workflows/register", responses=errors(AUTHENTICATED, WITH_BODY, 409))
async def register_workflow(
    body: RegisterRequest, principal: CurrentPrincipal, services: ServicesDep, catalog: CatalogDep
) -> Any:
    """Register the tenant's workflow (and the agents it brings, as ``POST /v1/agents``
    would); 422 with every issue when it does not validate or the policy refuses it."""
    import json

    if body.rag_pipelines:
        raise ValidationFailed(
            "rag_pipelines: RAG pipelines are the operator's documents (the agents folder);"
            " register the workflow without rag_pipelines"
        )
    for agent in body.agents:
        await catalog.register(
            json.dumps(agent), tenant=principal.tenant, may_use_agent=principal.allows
        )
    visible = [e.name for e in await catalog.entries(tenant=principal.tenant)]
    workflow = registered_workflow(
        body.workflow,
        known_agents=visible,
        policy=catalog.policy,
        may_use_agent=principal.allows,
    )
    engine = await services.workflows()
    await engine.register(workflow, tenant=principal.tenant)
    return JSONResponse(
        {
            "workflow_name": workflow.name,
            "agents": [str((a.get("metadata") or {}).get("name")) for a in body.agents],
            "rag_pipelines": [],
            "status": "registered",
        },
        status_code=201,
    )


@router.get("/v1/workflows/runs/{run_id}", responses=errors(AUTHENTICATED, AGENT))
async def get_run(run_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Any:
    """The run: status, each step, the pending approval."""
    engine = await services.workflows()
    run = await _visible(engine, principal, run_id)
    return run_view(run, engine.document_of(run))


@router.post(
    "/v1/workflows/runs/{run_id}/resume", responses=errors(AUTHENTICATED, WITH_BODY, AGENT, RUNS)
)
async def resume_run(
    run_id: str, body: ResumeRequest, principal: CurrentPrincipal, services: ServicesDep
) -> Any:
    """Resume a run waiting to be resumed; ``payload`` is the wait step's output."""
    engine = await services.workflows()
    run = await engine.resume(await _visible(engine, principal, run_id), body.payload)
    return answer(await engine.settled(run))


async def _decide(
    run_id: str, body: DecisionRequest, principal: Principal, engine: WorkflowEngine, approve: bool
) -> Any:
    run = await _visible(engine, principal, run_id)
    if run.pending_approval is not None:
        require_approver(principal, run.pending_approval.approver, body.approver)
    outcome = (
        Approved(approver=body.approver, comment=body.comment)
        if approve
        else Rejected(approver=body.approver, comment=body.comment)
    )
    run = await engine.settled(await engine.decide(run, outcome))
    return {"run_id": run.id, "status": upstream_status(run), "state": run.status.value}


@router.post(
    "/v1/workflows/runs/{run_id}/approve",
    responses=errors(AUTHENTICATED, WITH_BODY, AGENT, RUNS),
)
async def approve_run(
    run_id: str, body: DecisionRequest, principal: CurrentPrincipal, services: ServicesDep
) -> Any:
    """Approve the pending approval; the run goes on (409 when it awaits none)."""
    return await _decide(run_id, body, principal, await services.workflows(), True)


@router.post(
    "/v1/workflows/runs/{run_id}/reject",
    responses=errors(AUTHENTICATED, WITH_BODY, AGENT, RUNS),
)
async def reject_run(
    run_id: str, body: DecisionRequest, principal: CurrentPrincipal, services: ServicesDep
) -> Any:
    """Reject the pending approval; the step's ``on_reject`` decides what follows."""
    return await _decide(run_id, body, principal, await services.workflows(), False)


@router.get("/v1/workflows/{name}", responses=errors(AUTHENTICATED, AGENT))
async def get_workflow(name: str, principal: CurrentPrincipal, services: ServicesDep) -> Any:
    """The workflow: upstream's description and its steps' names and types."""
    if name in RESERVED_NAMES:  # /v1/workflows/register: POST only
        raise StarletteHTTPException(405)
    engine = await services.workflows()
    return describe(*await engine.find(name, tenant=principal.tenant))


@router.post("/v1/workflows/{name}/run", responses=errors(AUTHENTICATED, WITH_BODY, AGENT, RUNS))
async def run_workflow(
    name: str, body: WorkflowRunRequest, principal: CurrentPrincipal, services: ServicesDep
) -> Any:
    """Run the workflow: 200 with the run when it ends within the request, else 202."""
    engine = await services.workflows()
    workflow, _origin = await engine.find(name, tenant=principal.tenant)
    for _path, agent in workflow.spec.agents():
        require_agent(principal, agent)
    trigger = body.trigger if body.trigger is not None else {"query": body.query}
    return answer(await engine.run(name, trigger, tenant=principal.tenant))
