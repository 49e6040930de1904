"""``astromesh run --workflow NAME --input JSON``: one workflow run in-process.

The run is stored in the same state as ``astromesh dev`` uses, so a run that stops at an
approval (or a long wait) is carried on by the server: it picks unfinished runs up when it
starts, and ``POST /v1/workflows/runs/{id}/approve`` decides the approval.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from astromesh.errors import AstromeshError, ValidationFailed
from astromesh.runtime import AgentRuntime


def parse_input(text: str | None) -> dict[str, object]:
    """The trigger: a JSON object, or any other text as ``{"query": text}``."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"query": text}
    if not isinstance(value, dict):
        raise ValidationFailed("--input must be a JSON object (or plain text for the query)")
    return value


async def run_workflow(
    name: str, text: str | None, agents_dir: Path | None, as_json: bool, err: Console
) -> int:
    """Run ``name`` until it ends or suspends; print it. Exit status: 0 completed or
    suspended (the server carries it on), 1 failed, rejected or timed out, 2 not run."""
    from astromesh.channels.rest.workflows import finished_view, run_view
    from astromesh.workflows.engine import WorkflowEngine

    async with AgentRuntime(agents_dir) as runtime:
        engine = WorkflowEngine(runtime, sync_seconds=24 * 3600)
        try:
            trigger = parse_input(text)
            run = await engine.run(name, trigger, tenant="default")
        except AstromeshError as exc:
            err.print(f"[red]error:[/] {exc.message}")
            await engine.aclose()
            return 2
        await engine.aclose()
    workflow = engine.document_of(run)
    if as_json:
        body = finished_view(run) if run.status.is_terminal else run_view(run, workflow)
        print(json.dumps(body, ensure_ascii=False, default=str))
    else:
        for step, state in run.steps.items():
            err.print(f"[dim]{state.status.value:>17}  {step}[/]")
        if run.status.is_terminal:
            output = run.output if isinstance(run.output, str) else json.dumps(run.output)
            print(output)
        err.print(f"[dim]{run.status.value} · workflow run {run.id}[/]")
        if run.pending_approval is not None:
            err.print(
                f"awaiting approval of step {run.pending_approval.step!r}:"
                f" {run.pending_approval.prompt}\n"
                f"decide with POST /v1/workflows/runs/{run.id}/approve (or /reject) on"
                " 'astromesh dev' over the same state"
            )
        if run.error:
            err.print(f"[red]error:[/] {run.error}")
    if run.status.is_terminal and run.status.value != "completed":
        return 1
    return 0
