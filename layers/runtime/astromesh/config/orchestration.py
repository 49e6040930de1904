"""``spec.orchestration``: which pattern drives the step loop, and that pattern's settings.

One flat model (as upstream writes it) with per-pattern fields; a field set for a pattern that
does not use it is an error, because it would otherwise be silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from astromesh.config.base import ConfigModel
from astromesh.config.issues import config_error, one_of
from astromesh.config.templates import check_template

Pattern = Literal[
    "react", "plan_and_execute", "pipeline", "parallel_fan_out", "supervisor", "swarm"
]

# field -> the patterns that read it.
PATTERN_FIELDS: dict[str, tuple[str, ...]] = {
    "tool_calling": ("react", "plan_and_execute"),
    "stages": ("pipeline",),
    "targets": ("parallel_fan_out",),
    "aggregate": ("parallel_fan_out",),
    "workers": ("supervisor",),
    "agents": ("swarm",),
    "max_handoffs": ("swarm",),
    "max_replans": ("plan_and_execute",),
}
# pattern -> list fields it cannot run without. A supervisor's ``workers`` and a swarm's
# ``agents`` may instead come from the agent's ``type: agent`` tools (upstream's way); the
# Agent spec checks those (``AgentSpec._members_from_agent_tools``).
_REQUIRED: dict[str, tuple[str, ...]] = {
    "pipeline": ("stages",),
}
MEMBER_FIELDS: dict[str, str] = {"supervisor": "workers", "swarm": "agents"}
"""pattern -> the field naming the agents it coordinates."""


class PipelineStage(ConfigModel):
    """One stage of a pipeline: another agent, one of this agent's tools (called with
    ``{"query": <input>}``), or a prompt run by this agent's model.

    A ``tool`` stage makes retrieval deterministic: a ``rag`` tool's passages reach the next
    stage whatever the model, where a ReAct agent only gets them if its model decides to call
    the tool (the embedded 135M model never does)."""

    name: str
    agent: str | None = None
    tool: str | None = None
    prompt: str | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt_template(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value)

    @model_validator(mode="after")
    def _one_kind(self) -> PipelineStage:
        given = [k for k in ("agent", "tool", "prompt") if getattr(self, k) is not None]
        if len(given) != 1:
            raise config_error(
                f"stage '{self.name}' needs exactly one of 'agent', 'tool' or 'prompt'",
                field=given[1] if len(given) > 1 else None,
            )
        return self

    @property
    def kind(self) -> Literal["agent", "tool", "prompt"]:
        return "agent" if self.agent is not None else "tool" if self.tool is not None else "prompt"


class FanOutTarget(ConfigModel):
    """One branch of a parallel fan-out: another agent, or a model role of this agent."""

    agent: str | None = None
    model: str | None = None

    @model_validator(mode="after")
    def _agent_or_model(self) -> FanOutTarget:
        if (self.agent is None) == (self.model is None):
            raise config_error("a target needs exactly one of 'agent' or 'model'")
        return self


class OrchestrationSpec(ConfigModel):
    """How a run loops. ``timeout_seconds`` bounds the whole run (upstream also says
    ``timeout``)."""

    pattern: Pattern = "react"
    max_iterations: int = Field(10, ge=1)
    timeout_seconds: float = Field(
        120, gt=0, validation_alias=AliasChoices("timeout_seconds", "timeout")
    )
    tool_calling: Literal["auto", "native", "text"] = "auto"
    stages: list[PipelineStage] | None = None
    targets: list[FanOutTarget] | None = None
    aggregate: Literal["merge", "vote", "synthesize"] = "merge"
    workers: list[str] | None = None
    agents: list[str] | None = None
    max_handoffs: int | None = Field(None, ge=1)
    max_replans: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _fields_match_pattern(self) -> OrchestrationSpec:
        for name, patterns in PATTERN_FIELDS.items():
            if name in self.model_fields_set and self.pattern not in patterns:
                raise config_error(
                    f"'{name}' belongs to pattern {one_of(patterns)}, not '{self.pattern}'"
                    " (remove it or change the pattern)",
                    field=name,
                )
        for name in _REQUIRED.get(self.pattern, ()):
            if not getattr(self, name):
                raise config_error(
                    f"pattern '{self.pattern}' needs '{name}' (a non-empty list)",
                    field=name,
                )
        if self.stages:
            seen: set[str] = set()
            for i, stage in enumerate(self.stages):
                if stage.name in seen:
                    raise config_error(
                        f"duplicate stage name '{stage.name}'", field=f"stages.{i}.name"
                    )
                seen.add(stage.name)
        return self

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave out other patterns' fields (defaults included), so a dump loads again."""
        data: dict[str, Any] = handler(self)
        for name, patterns in PATTERN_FIELDS.items():
            if self.pattern not in patterns:
                data.pop(name, None)
        return data

    def with_defaults(self, defaults: OrchestrationDefaults | None) -> OrchestrationSpec:
        """This spec with RuntimeConfig defaults filled in where the agent file said nothing."""
        if defaults is None:
            return self
        fill = {
            name: value
            for name, value in defaults.model_dump(exclude_none=True).items()
            if name not in self.model_fields_set
        }
        return self.model_copy(update=fill) if fill else self


class OrchestrationDefaults(ConfigModel):
    """RuntimeConfig ``defaults.orchestration``: values for agents that leave them out."""

    pattern: Pattern | None = None
    max_iterations: int | None = Field(None, ge=1)
    timeout_seconds: float | None = Field(
        None, gt=0, validation_alias=AliasChoices("timeout_seconds", "timeout")
    )
