"""The workflow run store on every state backend: round trip, CAS, filters, registrations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from astromesh.errors import ConflictError, NotFoundError
from astromesh.workflows import Approved, WorkflowStatus, apply_outcome, start_run
from astromesh.workflows.store import open_workflow_store
from tests.stores.conftest import BACKENDS, make_backend
from tests.workflows.documents import steps, workflow

APPROVAL = steps(
    """    - name: review
      approval: {prompt: "ok?", approver: ana}
    - name: after
      tool: current_time
"""
)


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path):
    backend = await make_backend(request.param, request, tmp_path)
    try:
        yield open_workflow_store(backend)
    finally:
        await backend.close()


async def test_round_trip_and_compare_and_swap(store):
    wf = workflow(APPROVAL)
    run = await store.create(start_run(wf, {"query": "q"}, tenant="acme"))
    assert run.version == 1
    with pytest.raises(ConflictError):
        await store.create(run.model_copy())
    loaded = await store.get(run.id)
    assert loaded.status is WorkflowStatus.AWAITING_APPROVAL
    assert loaded.pending_approval.approver == "ana"
    # two resumes read the same version: only the first one's save lands
    first = apply_outcome(wf, loaded, "review", Approved(approver="ana"))
    second = apply_outcome(wf, await store.get(run.id), "review", Approved(approver="bo"))
    await store.save(first)
    with pytest.raises(ConflictError, match="modified concurrently"):
        await store.save(second)
    assert (await store.get(run.id)).steps["review"].output["approver"] == "ana"
    with pytest.raises(NotFoundError):
        await store.get("wfr_missing")


async def test_concurrent_saves_of_one_version_let_one_win(store):
    wf = workflow(APPROVAL)
    run = await store.create(start_run(wf, {}))
    copies = [(await store.get(run.id)) for _ in range(5)]
    results = await asyncio.gather(*(store.save(c) for c in copies), return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, ConflictError) for r in results if isinstance(r, Exception))


async def test_listing_filters_by_tenant_and_status(store):
    wf = workflow(APPROVAL)
    a = await store.create(start_run(wf, {}, tenant="acme"))
    b = await store.create(start_run(wf, {}, tenant="other"))
    done = apply_outcome(wf, b, "review", Approved(approver="x"))
    done.status = WorkflowStatus.COMPLETED
    await store.save(done)
    waiting = await store.list_runs(statuses=["awaiting_approval"])
    assert [r.id for r in waiting] == [a.id]
    assert [r.id for r in await store.list_runs(tenant="other")] == [b.id]
    assert await store.list_runs(tenant="acme", statuses=["completed"]) == []


async def test_registered_workflows_per_tenant(store):
    await store.put_workflow("acme", "w", '{"v": 1}')
    await store.put_workflow("acme", "w", '{"v": 2}')
    await store.put_workflow("other", "x", "{}")
    assert await store.get_workflow("acme", "w") == '{"v": 2}'
    assert await store.get_workflow("other", "w") is None
    assert await store.list_workflows("acme") == {"w": '{"v": 2}'}
