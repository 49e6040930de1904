"""Upstream's ``astromeshctl tools list`` / ``tools test``: the builtin tools, and one builtin
run with caller-chosen arguments (``POST /v1/tools/execute``), under the registration policy.

Running a builtin directly is what an agent registered through the API could do with that
tool, without a model in between; so the caller is held to exactly what such an agent gets.
The request's tool becomes the one tool of a throw-away agent document, checked by the same
:func:`~astromesh.security.registration_issues` a posted agent is (the policy's ``tool_types``
and ``builtins``, ``read_file`` roots under ``file_roots`` and never in ``/proc``, ``/etc``,
the state folder..., ``allow_private_network`` only where the policy allows it), then built
with the policy's grants (:meth:`~astromesh.security.RegistrationPolicy.grants`), so the
network tools connect through the SSRF guard and ``read_file`` resolves every path inside its
root at call time. Nothing here is looser than registering an agent, and the route needs the
role that registering does (``developer``, :mod:`astromesh.channels.access`).
"""

from __future__ import annotations

import json
import uuid
from difflib import get_close_matches
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from astromesh.channels.errors import Forbidden
from astromesh.config import AgentDocument
from astromesh.config.constants import BUILTIN_TOOLS
from astromesh.errors import ConfigurationError, NotFoundError, ValidationFailed
from astromesh.security import RegistrationPolicy, registration_issues
from astromesh.security.grants import FILE_AGENT_GRANTS
from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin import build_builtin

if TYPE_CHECKING:
    from astromesh.auth import Principal
    from astromesh.runtime import AgentRuntime

SOURCE = "POST /v1/tools/execute"
"""How issues of the request's tool name their source."""

_TOOL_PATH = "spec.tools[0]."
"""Where the request's tool sits in the throw-away document (stripped from issue fields)."""

NEEDS_AN_AGENT = frozenset({"text_summarize"})
"""Builtins that call the agent's own model: they have no meaning without an agent."""


async def _no_model(_text: str, _max_words: int) -> str:
    raise ConfigurationError("text_summarize needs an agent's model; run it through an agent")


def list_builtins(runtime: AgentRuntime, policy: RegistrationPolicy) -> list[dict[str, Any]]:
    """Every builtin with its description and JSON-Schema parameters (each built with its
    default config, as an agent naming it without ``config`` would get it), and whether the
    policy lets ``POST /v1/tools/execute`` run it here."""
    listed: list[dict[str, Any]] = []
    for name in BUILTIN_TOOLS:
        entry: dict[str, Any] = {"name": name, "description": "", "parameters": {}}
        try:
            tool = build_builtin_tool(runtime, name, {}, grants=FILE_AGENT_GRANTS)
        except ConfigurationError as exc:
            entry["error"] = exc.message
        else:
            definition = tool.definition
            entry["description"] = definition.description
            entry["parameters"] = definition.parameters
        entry["allowed"] = builtin_refusal(policy, name) is None and name not in NEEDS_AN_AGENT
        listed.append(entry)
    return listed


async def execute_builtin(
    runtime: AgentRuntime,
    policy: RegistrationPolicy,
    principal: Principal,
    *,
    tool_name: str,
    arguments: dict[str, Any],
    config: dict[str, Any],
) -> dict[str, Any]:
    """Run one builtin as a registered agent's tool would run.

    Returns:
        upstream's ``{"tool", "status": "ok" | "error", "result"}`` (the tool's value, or
        why it failed: a refused address, a file outside its root...) and ``duration_ms``.

    Raises:
        NotFoundError: no builtin has that name (the nearest one is suggested).
        Forbidden: the registration policy does not grant the tool (its rule is named).
        ValidationFailed: ``config`` or ``arguments`` are not what the tool takes, or the
            tool needs an agent's model.
    """
    if tool_name not in BUILTIN_TOOLS:
        hint = get_close_matches(tool_name, BUILTIN_TOOLS, n=1)
        suffix = f"; did you mean {hint[0]!r}?" if hint else ""
        raise NotFoundError(
            f"tool_name: no builtin tool {tool_name!r}{suffix} (builtins: "
            f"{', '.join(BUILTIN_TOOLS)})"
        )
    refusal = builtin_refusal(policy, tool_name)
    if refusal is not None:
        raise Forbidden(f"tool_name: {refusal}")
    if tool_name in NEEDS_AN_AGENT:
        raise ValidationFailed(
            f"tool_name: {tool_name!r} calls the agent's own model, so it only runs inside an"
            " agent: give an agent this tool and run the agent"
        )
    _check_policy(runtime, policy, tool_name, config)
    try:
        tool = build_builtin_tool(runtime, tool_name, config, grants=policy.grants())
    except ConfigurationError as exc:
        raise ValidationFailed(f"config: {exc.message}") from None
    problems = tool.argument_errors(arguments)
    if problems:
        raise ValidationFailed("arguments: " + "; ".join(problems))
    context = ToolContext(
        run_id=f"tools-execute-{uuid.uuid4().hex}",
        agent="",
        session_id="",
        namespace=principal.tenant,
    )
    try:
        result = await tool.call(arguments, context)
    finally:
        await _close(tool)
    return {
        "tool": tool_name,
        "status": "ok" if result.ok else "error",
        "result": result.data if result.ok else result.content,
        "duration_ms": result.duration_ms,
    }


def builtin_refusal(policy: RegistrationPolicy, name: str) -> str | None:
    """Why the policy refuses the builtin ``name`` to API callers, or ``None``."""
    if "builtin" not in policy.tool_types:
        return (
            "builtin tools are not allowed for callers of the API here (policy:"
            " spec.registration.tool_types / ASTROMESH_REGISTRATION_TOOL_TYPES)"
        )
    if name not in policy.builtins:
        allowed = ", ".join(sorted(policy.builtins)) or "none"
        return (
            f"builtin {name!r} is not allowed for callers of the API here (allowed: {allowed};"
            " policy: spec.registration.builtins / ASTROMESH_REGISTRATION_BUILTINS)"
        )
    return None


def _check_policy(
    runtime: AgentRuntime, policy: RegistrationPolicy, name: str, config: dict[str, Any]
) -> None:
    """Refuse a ``config`` the policy would refuse in a posted agent document (403)."""
    raw = {
        "apiVersion": "astromesh/v1",
        "kind": "Agent",
        "metadata": {"name": "tools-execute"},
        "spec": {
            "model": {"primary": {"provider": "ollama", "model": "none"}},
            "prompts": {"system": "none"},
            "tools": [{"type": "builtin", "name": name, "config": config}],
        },
    }
    try:
        document = AgentDocument.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ValidationFailed(f"config: {where}: {error['msg']}") from None
    issues = [
        issue
        for issue in registration_issues(
            document,
            json.dumps(raw),
            source=SOURCE,
            policy=policy,
            providers=runtime.config.providers,
        )
        if issue.field.startswith(_TOOL_PATH)
    ]
    if issues:
        reasons = "; ".join(f"{i.field.removeprefix(_TOOL_PATH)}: {i.message}" for i in issues)
        raise Forbidden(f"the registration policy refuses this tool: {reasons}")


def build_builtin_tool(
    runtime: AgentRuntime, name: str, config: dict[str, Any], *, grants: Any
) -> Tool:
    from astromesh.config.tools import BuiltinTool

    try:
        cfg = BuiltinTool.model_validate({"type": "builtin", "name": name, "config": config})
    except ValidationError as exc:
        raise ConfigurationError(str(exc.errors()[0]["msg"])) from None
    return build_builtin(
        cfg,
        search_path=runtime.agents_dir,
        summariser=_no_model,
        grants=grants,
        cache=runtime.tool_cache(),
    )


async def _close(tool: Tool) -> None:
    """Release what the tool opened (an HTTP client), where it has such a hook."""
    closer = getattr(tool, "aclose", None)
    if closer is not None:
        await closer()
