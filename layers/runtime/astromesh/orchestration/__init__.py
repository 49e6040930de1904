"""Orchestration patterns: ``step`` policies over the shared step -> act -> observe loop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

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
from astromesh.orchestration.parallel_fan_out import ParallelFanOutPattern
from astromesh.orchestration.pipeline import PipelinePattern
from astromesh.orchestration.plan_and_execute import PlanAndExecutePattern
from astromesh.orchestration.react import ReActPattern
from astromesh.orchestration.supervisor import SupervisorPattern
from astromesh.orchestration.swarm import SwarmPattern

if TYPE_CHECKING:
    from astromesh.agent import Agent

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
        return ReActPattern(tool_calling=spec.tool_calling)
    if spec.pattern == "plan_and_execute":
        return PlanAndExecutePattern(max_replans=spec.max_replans, tool_calling=spec.tool_calling)
    if spec.pattern == "pipeline":
        return PipelinePattern(spec.stages or [])
    if spec.pattern == "parallel_fan_out":
        return ParallelFanOutPattern(spec.targets or [], aggregate=spec.aggregate)
    if spec.pattern == "supervisor":
        return SupervisorPattern(spec.workers or [])
    if spec.pattern == "swarm":
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
