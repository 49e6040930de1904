"""How a run's trace is shown: upstream's ``/v1/traces`` shapes over the spans kept with runs.

A trace is a root run's spans and those of every child run it started (agent tools, chain
links), which continue the same trace in their own run records. Spans come back as a tree
(``children`` under each span, ordered by start), each with upstream's fields (``name``,
``trace_id``, ``span_id``, ``parent_span_id``, ``status``, ``attributes``, ``events``,
``start_time`` and ``end_time`` in Unix seconds, ``duration_ms``), so upstream's
``astromeshctl trace`` prints the tree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from astromesh.runs.state import RunState

MAX_TRACE_RUNS = 50
"""Runs (the root and its descendants) read for one trace."""


def trace_item(run: RunState) -> dict[str, Any]:
    """One ``GET /v1/traces`` entry: upstream's ``trace_id``, ``agent``, ``started_at``,
    ``duration_ms`` and ``status`` (``ok`` or ``error``), with the run's own fields."""
    context = run.trace
    ended = run.updated_at if run.status.is_terminal else None
    return {
        "trace_id": context.trace_id if context else None,
        "run_id": run.id,
        "agent": run.agent,
        "session_id": run.session_id,
        "started_at": _utc(run.created_at).isoformat(),
        "duration_ms": round((_utc(ended) - _utc(run.created_at)).total_seconds() * 1000.0, 1)
        if ended
        else None,
        "status": "ok"
        if run.status.value in ("succeeded", "running", "requires_action")
        else "error",
        "run_status": run.status.value,
        "spans": len(context.spans) if context else 0,
        "tokens_in": run.usage.tokens_in,
        "tokens_out": run.usage.tokens_out,
        "cost": round(run.usage.cost, 8),
    }


async def trace_document(
    root: RunState, load: Callable[[str], Awaitable[RunState | None]]
) -> dict[str, Any]:
    """``GET /v1/traces/{trace_id}``: the root run's entry, its runs and their span tree."""
    runs = await _with_descendants(root, load)
    trace_id = root.trace.trace_id if root.trace else ""
    records = [{**span, "run_id": run.id} for run in runs if run.trace for span in run.trace.spans]
    return {
        **trace_item(root),
        "trace_id": trace_id,
        "runs": [
            {
                "run_id": r.id,
                "agent": r.agent,
                "parent_run_id": r.parent_run_id,
                "status": r.status.value,
            }
            for r in runs
        ],
        "dropped_spans": sum(r.trace.dropped for r in runs if r.trace),
        "span_count": len(records),
        "spans": span_tree(records, trace_id),
    }


def span_tree(records: list[dict[str, Any]], trace_id: str) -> list[dict[str, Any]]:
    """Span records as upstream's span dicts nested by parent; a span whose parent is not
    here (the caller's span, a span not kept) is a root."""
    spans = {r["span_id"]: _span(r, trace_id) for r in records}
    roots: list[dict[str, Any]] = []
    for span in spans.values():
        parent = spans.get(span["parent_span_id"] or "")
        (parent["children"] if parent is not None else roots).append(span)
    for span in spans.values():
        span["children"].sort(key=lambda s: s["start_time"])
    return sorted(roots, key=lambda s: s["start_time"])


def _span(record: dict[str, Any], trace_id: str) -> dict[str, Any]:
    start, end = record["start_ns"], record["end_ns"]
    return {
        "name": record["name"],
        "trace_id": trace_id,
        "span_id": record["span_id"],
        "parent_span_id": record["parent_span_id"],
        "run_id": record.get("run_id"),
        "kind": record.get("kind", "internal"),
        "status": record["status"],
        "error": record.get("error"),
        "attributes": record["attributes"],
        "events": [],
        "start_time": start / 1e9,
        "end_time": end / 1e9,
        "duration_ms": round((end - start) / 1e6, 3),
        "children": [],
    }


async def _with_descendants(
    root: RunState, load: Callable[[str], Awaitable[RunState | None]]
) -> list[RunState]:
    found = [root]
    queue = [root]
    seen = {root.id}
    while queue and len(found) < MAX_TRACE_RUNS:
        run = queue.pop(0)
        for child_id in _children(run):
            if child_id in seen or len(found) >= MAX_TRACE_RUNS:
                continue
            seen.add(child_id)
            child = await load(child_id)
            if child is not None:
                found.append(child)
                queue.append(child)
    return found


def _children(run: RunState) -> list[str]:
    ids = [
        str(s.data["child_run_id"])
        for s in run.steps
        if s.type == "tool_call" and s.data.get("child_run_id")
    ]
    for link in (run.chain or {}).get("links", []):
        if isinstance(link, dict) and link.get("run_id"):
            ids.append(str(link["run_id"]))
    return ids


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
