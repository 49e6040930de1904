"""Helpers for multi-agent tests: agent documents per pattern and reading runs back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from astromesh.runs.state import RunState
from astromesh.runtime import AgentRuntime
from tests.support.agents import primary, write_agent


def write_pattern_agent(
    folder: Path, name: str, url: str, pattern: str, provider: str = "openai_compat", **fields: Any
) -> Path:
    """An agent on the scripted server at ``url`` whose orchestration is ``pattern``."""
    extra = {k: fields.pop(k) for k in list(fields) if k in ("tools", "permissions", "prompts")}
    model = fields.pop("model", None) or primary(url, provider)
    orchestration = {"pattern": pattern, "max_iterations": 6, "timeout_seconds": 30, **fields}
    return write_agent(folder, name, model=model, orchestration=orchestration, **extra)


def write_worker(folder: Path, name: str, url: str, *, description: str = "", **spec: Any) -> Path:
    """A plain ReAct agent on the scripted server at ``url``, optionally described."""
    identity = {"display_name": name.title(), "description": description or f"The {name} agent"}
    return write_agent(folder, name, model=primary(url), identity=identity, **spec)


def step_types(run: RunState) -> list[str]:
    return [step.type for step in run.steps]


def steps_of(run: RunState, kind: str) -> list[dict[str, Any]]:
    return [step.data for step in run.steps if step.type == kind]


async def stored(runtime: AgentRuntime, run_id: str) -> RunState:
    """The run as persisted (children are only reachable this way)."""
    return await (await runtime.state()).runs.get(run_id)


def user_contents(request: dict[str, Any]) -> list[str]:
    """The user messages of one recorded chat request."""
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


def candidate(url: str, provider: str = "openai_compat", model: str = "scripted") -> dict[str, Any]:
    return {"provider": provider, "model": model, "endpoint": url}


def role_model(default_url: str, **roles: str) -> dict[str, Any]:
    """A role-form ``spec.model``: default on ``default_url``, each role on its own URL."""
    return {
        "default": {"candidates": [candidate(default_url)]},
        "roles": {role: {"candidates": [candidate(url)]} for role, url in roles.items()},
    }
