"""What patterns need from the runtime when an agent is built: the agents they call.

Kept out of ``runtime.py`` so the runtime only asks "which agents does this spec call?" and
"add the tools for them", and each rule about agent references lives in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from astromesh.config.orchestration import OrchestrationSpec
from astromesh.errors import ConfigurationError
from astromesh.tools.agent import AgentTool
from astromesh.tools.registry import ToolRegistry


def called_agents(spec: OrchestrationSpec) -> list[tuple[str, str]]:
    """``(where, agent)`` for every agent the pattern runs as a child run (via its tool)."""
    found: list[tuple[str, str]] = []
    if spec.pattern == "pipeline":
        for i, stage in enumerate(spec.stages or []):
            if stage.agent is not None:
                found.append((f"orchestration.stages[{i}] ({stage.name})", stage.agent))
    elif spec.pattern == "parallel_fan_out":
        for i, target in enumerate(spec.targets or []):
            if target.agent is not None:
                found.append((f"orchestration.targets[{i}]", target.agent))
    elif spec.pattern == "supervisor":
        found += [(f"orchestration.workers[{i}]", w) for i, w in enumerate(spec.workers or [])]
    return found


def swarm_agents(spec: OrchestrationSpec) -> list[tuple[str, str]]:
    """``(where, agent)`` for a swarm's members (run in-conversation, not as child runs)."""
    if spec.pattern != "swarm":
        return []
    return [(f"orchestration.agents[{i}]", name) for i, name in enumerate(spec.agents or [])]


def check_fan_out_roles(spec: OrchestrationSpec, roles: Collection[str]) -> None:
    """A fan-out ``model`` target must name a declared role: a typo would otherwise quietly
    ask the default model.

    Raises:
        ConfigurationError: a target names a role ``spec.model`` does not declare.
    """
    if spec.pattern != "parallel_fan_out":
        return
    for i, target in enumerate(spec.targets or []):
        if target.model is not None and target.model not in roles:
            raise ConfigurationError(
                f"orchestration.targets[{i}]: model role {target.model!r} is not declared "
                f"(roles: {', '.join(sorted(roles))}); declare it under spec.model.roles"
            )


def add_agent_tools(
    registry: ToolRegistry, agents: Collection[str], describe: Callable[[str], str]
) -> None:
    """Give the registry an always-permitted tool named after each agent the pattern calls.

    A ``type: agent`` tool of the same name that calls the same agent with a ``query`` is
    reused (and permitted); any other tool by that name is a conflict.

    Raises:
        ConfigurationError: a different tool already uses an agent's name.
    """
    for name in dict.fromkeys(agents):
        existing = registry.get(name)
        if existing is None:
            # The agent's own ``type: agent`` tool for it (upstream's supervisor and swarm
            # take their members from those) serves, with the description its author wrote.
            own = registry.agent_tool(name)
            if own is not None and _query_only(own):
                registry.permit(own.name)
                continue
            registry.add(AgentTool(name, name, description=describe(name)), always_allowed=True)
            continue
        reusable = (
            isinstance(existing, AgentTool)
            and existing.agent_name == name
            and _query_only(existing)
        )
        if not reusable:
            raise ConfigurationError(
                f"tool {name!r} clashes with the agent tool the pattern needs to call agent "
                f"{name!r}; rename the tool"
            )
        registry.permit(name)


def _query_only(tool: AgentTool) -> bool:
    """Whether the tool takes the ``query`` a pattern sends and requires nothing else."""
    return "query" in tool.parameters.get("properties", {}) and set(
        tool.parameters.get("required", [])
    ) <= {"query"}
