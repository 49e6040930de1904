"""How agents, messages and runs are shown by the REST and WebSocket channels."""

from __future__ import annotations

from typing import Any

from astromesh.channels.catalog import CatalogEntry
from astromesh.models.types import Message
from astromesh.runs.state import RunState
from astromesh.runs.views import run_response


def agent_summary(entry: CatalogEntry) -> dict[str, Any]:
    """An item of ``GET /v1/agents``: upstream's fields plus status and origin."""
    doc = entry.document
    identity = doc.spec.identity
    return {
        "name": entry.name,
        "version": doc.metadata.version,
        "namespace": doc.metadata.namespace,
        "description": identity.description if identity else None,
        "pattern": doc.spec.orchestration.pattern,
        "display_name": identity.display_name if identity else None,
        "status": entry.status.value,
        "origin": entry.origin,
        "tenant": entry.tenant or None,
        "tools": [tool.name for tool in doc.spec.tools],
    }


def agent_config(entry: CatalogEntry) -> dict[str, Any]:
    """``GET /v1/agents/{name}``: the document as configured, plus status, origin, revision
    and owning tenant."""
    data = entry.document.model_dump(mode="json", exclude_none=True)
    config: dict[str, Any] = {"apiVersion": data.pop("api_version", None), **data}
    config.update(
        status=entry.status.value,
        origin=entry.origin,
        revision=entry.revision,
        tenant=entry.tenant or None,
    )
    return config


def history_message(message: Message) -> dict[str, Any]:
    """One history entry in upstream's ``{role, content, ...}`` shape."""
    view: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.tool_calls:
        view["tool_calls"] = [call.model_dump(mode="json") for call in message.tool_calls]
    if message.tool_call_id:
        view["tool_call_id"] = message.tool_call_id
    if message.name:
        view["name"] = message.name
    return view


def run_view(run: RunState) -> dict[str, Any]:
    """``GET /v1/runs/{id}``: the run response plus what identifies the run."""
    return {
        **run_response(run),
        "agent": run.agent,
        "query": run.query,
        "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(),
    }
