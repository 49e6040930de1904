"""Orchestration patterns: ``step`` policies over the shared step -> act -> observe loop."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from astromesh.config.orchestration import OrchestrationSpec
from astromesh.errors import ConfigurationError
from astromesh.orchestration.base import (
    Act,
    Decision,
    Fail,
    Finish,
    Pattern,
    StepContext,
    decision_from_dict,
    decision_to_dict,
)

if TYPE_CHECKING:
    from astromesh.agent import Agent
    from astromesh.orchestration.parallel_fan_out import ParallelFanOutPattern
    from astromesh.orchestration.pipeline import PipelinePattern
    from astromesh.orchestration.plan_and_execute import PlanAndExecutePattern
    from astromesh.orchestration.react import ReActPattern
    from astromesh.orchestration.supervisor import SupervisorPattern
    from astromesh.orchestration.swarm import SwarmPattern

_PATTERN_MODULES = {
    "ParallelFanOutPattern": "parallel_fan_out",
    "PipelinePattern": "pipeline",
    "PlanAndExecutePattern": "plan_and_execute",
    "ReActPattern": "react",
    "SupervisorPattern": "supervisor",
    "SwarmPattern": "swarm",
}
"""Each pattern's module is imported when an agent uses it (or its name is imported from
here): an API serving ``react`` agents does not load the swarm's tool machinery."""


def __getattr__(name: str) -> Any:
    if name in _PATTERN_MODULES:
        module = import_module(f"astromesh.orchestration.{_PATTERN_MODULES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


RUNNABLE_PATTERNS = (
    "react",
    "plan_and_execute",
    "pipeline",
    "parallel_fan_out",
    "supervisor",
    "swarm",
)


def build_pattern(
    pattern: str | OrchestrationSpec,
    *,
    tool_calling: str = "auto",
    members: Mapping[str, Agent] | None = None,
) -> Pattern:
    """The step policy for ``spec.orchestration``.

    Args:
        pattern: the whole orchestration spec (patterns read their fields from it), or just
            a pattern name for patterns that need no fields (``react``, ``plan_and_execute``).
        tool_calling: used with a bare name; a spec carries its own.
        members: a swarm's agents, built by the runtime, in ``spec.agents`` order.

    Raises:
        ConfigurationError: the pattern is unknown, or needs fields or members not given.
    """
    spec = pattern if isinstance(pattern, OrchestrationSpec) else _spec_for(pattern, tool_calling)
    if spec.pattern == "react":
        from astromesh.orchestration.react import ReActPattern

        return ReActPattern(tool_calling=spec.tool_calling)
    if spec.pattern == "plan_and_execute":
        from astromesh.orchestration.plan_and_execute import PlanAndExecutePattern

        return PlanAndExecutePattern(max_replans=spec.max_replans, tool_calling=spec.tool_calling)
    if spec.pattern == "pipeline":
        from astromesh.orchestration.pipeline import PipelinePattern

        return PipelinePattern(spec.stages or [])
    if spec.pattern == "parallel_fan_out":
        from astromesh.orchestration.parallel_fan_out import ParallelFanOutPattern

        return ParallelFanOutPattern(spec.targets or [], aggregate=spec.aggregate)
    if spec.pattern == "supervisor":
        from astromesh.orchestration.supervisor import SupervisorPattern

        return SupervisorPattern(spec.workers or [])
    if spec.pattern == "swarm":
        from astromesh.orchestration.swarm import SwarmPattern

        names = spec.agents or []
        missing = [name for name in names if name not in (members or {})]
        if missing:
            raise ConfigurationError(f"swarm members not built: {', '.join(missing)}")
        assert members is not None
        return SwarmPattern({name: members[name] for name in names}, max_handoffs=spec.max_handoffs)
    raise ConfigurationError(  # pragma: no cover - the Literal in the spec refuses it first
        f"unknown orchestration pattern {spec.pattern!r} (runnable: {', '.join(RUNNABLE_PATTERNS)})"
    )


def _spec_for(name: str, tool_calling: str) -> OrchestrationSpec:
    fields: dict[str, str] = {"pattern": name}
    if name in ("react", "plan_and_execute"):
        fields["tool_calling"] = tool_calling
    try:
        return OrchestrationSpec.model_validate(fields)
    except ValidationError as exc:
        raise ConfigurationError(f"orchestration pattern {name!r}: {exc}") from exc


__all__ = [
    "RUNNABLE_PATTERNS",
    "Act",
    "Decision",
    "Fail",
    "Finish",
    "ParallelFanOutPattern",
    "Pattern",
    "PipelinePattern",
    "PlanAndExecutePattern",
    "ReActPattern",
    "StepContext",
    "SupervisorPattern",
    "SwarmPattern",
    "build_pattern",
    "decision_from_dict",
    "decision_to_dict",
]
