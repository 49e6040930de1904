"""The ``Agent`` document: everything the runtime needs to build and run one agent."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from astromesh.config.base import ConfigDocument, ConfigModel
from astromesh.config.constants import TOOL_TYPES
from astromesh.config.guardrails import GuardrailsSpec
from astromesh.config.issues import config_error, one_of, suggest, with_suggestion
from astromesh.config.limits import check_spec_limits
from astromesh.config.model_spec import ModelSpec
from astromesh.config.orchestration import MEMBER_FIELDS, OrchestrationSpec
from astromesh.config.templates import check_template
from astromesh.config.tools import AgentTool as AgentToolConfig
from astromesh.config.tools import AnyTool
from astromesh.structured.schema import (
    SchemaError,
    check_output_schema,
    normalize_output_schema,
)


class Identity(ConfigModel):
    """How the agent presents itself (also available to prompts as ``agent.*``)."""

    display_name: str | None = None
    description: str | None = None
    avatar: str | None = None
    role: str | None = None
    """Upstream's: who the agent is ("Helpful assistant"); prompts read ``agent.role``."""
    personality: str | None = None
    """Upstream's: how it speaks; prompts read ``agent.personality``."""


class Prompts(ConfigModel):
    """The system prompt and named templates, all Jinja2."""

    system: str = ""
    templates: dict[str, str] = Field(default_factory=dict)

    @field_validator("system")
    @classmethod
    def _system_syntax(cls, value: str) -> str:
        return check_template(value)

    @field_validator("templates")
    @classmethod
    def _templates_syntax(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            check_template(text, field=name)
        return value


class ConversationalMemory(ConfigModel):
    """The recent turns of a session."""

    backend: Literal["sqlite", "redis", "postgres", "memory"] = "sqlite"
    strategy: Literal["sliding_window", "summary", "token_budget"] = "sliding_window"
    max_turns: int = Field(20, ge=1)
    ttl: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)


class SemanticMemory(ConfigModel):
    """Facts recalled by similarity."""

    backend: Literal["sqlite", "pgvector", "faiss", "chromadb", "qdrant", "memory"] = "sqlite"
    similarity_threshold: float = Field(0.7, ge=0, le=1)
    max_results: int = Field(5, ge=1)


class EpisodicMemory(ConfigModel):
    """Events and summaries of past runs."""

    backend: Literal["sqlite", "postgres", "memory"] = "sqlite"


class MemorySpec(ConfigModel):
    """Which memories the agent keeps; a missing one is not kept."""

    conversational: ConversationalMemory | None = None
    semantic: SemanticMemory | None = None
    episodic: EpisodicMemory | None = None


class FilesystemPermissions(ConfigModel):
    """Path prefixes the agent's tools may read and write."""

    read: list[str] = Field(default_factory=list)
    write: list[str] = Field(default_factory=list)


class NetworkPermissions(ConfigModel):
    """Hosts (``host`` or ``host:port``) the agent's tools may reach."""

    allowed: list[str] = Field(default_factory=list)


class ExecutionPermissions(ConfigModel):
    """``dry_run``: side-effecting tools (webhooks other than GET, MCP, Python and client
    tools) report what they would do instead of doing it. ``tool_types`` (ours): the tool
    types the agent may use at all; it narrows the registration policy, never widens it."""

    dry_run: bool = False
    tool_types: list[str] | None = None

    @field_validator("tool_types")
    @classmethod
    def _known_types(cls, value: list[str] | None) -> list[str] | None:
        for i, kind in enumerate(value or ()):
            if kind not in TOOL_TYPES:
                raise config_error(
                    f"unknown tool type '{kind}'; expected one of {one_of(TOOL_TYPES)}",
                    field=str(i),
                )
        return value


class Permissions(ConfigModel):
    """What the agent may do. ``allowed_actions`` may name actions beyond its own tools
    (upstream lists some), so unknown names there are not errors."""

    allowed_actions: list[str] | None = None
    filesystem: FilesystemPermissions | None = None
    network: NetworkPermissions | None = None
    execution: ExecutionPermissions | None = None

    def allows(self, action: str) -> bool:
        """Whether ``action`` may run (everything is allowed when no list is given)."""
        return self.allowed_actions is None or action in self.allowed_actions


class ChainRetry(ConfigModel):
    """How a chained agent is retried when it fails."""

    max_attempts: int = Field(1, ge=1, le=10)
    backoff: Literal["fixed", "linear", "exponential"] = "exponential"
    initial_delay_seconds: float = Field(1.0, ge=0, le=60)


CHAIN_STOP = "stop"
CHAIN_CONTINUE = "continue"


class ChainStep(ConfigModel):
    """Run ``agent`` after this one completes, when ``when`` renders truthy.

    ``input`` renders the chained agent's query (default: this agent's answer); ``default``
    fires only when no ``when`` of the chain matched. ``on_error``: ``stop`` (the default;
    ``fail`` is the same), ``continue``, or the name of an agent to run instead.
    """

    agent: str
    when: str | None = None
    input: str | None = None
    default: bool = False
    retry: ChainRetry | None = None
    timeout_seconds: float | None = Field(None, gt=0)
    on_error: str = CHAIN_STOP

    @field_validator("when", "input")
    @classmethod
    def _template_syntax(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value)

    @field_validator("on_error")
    @classmethod
    def _on_error(cls, value: str) -> str:
        return CHAIN_STOP if value == "fail" else value

    @model_validator(mode="after")
    def _default_has_no_when(self) -> ChainStep:
        if self.default and self.when is not None:
            raise config_error(
                f"chained agent '{self.agent}' has both 'default' and 'when': a default fires"
                " when no 'when' of the chain matched, so it cannot have its own",
                field="when",
            )
        return self


class ChainSpec(ConfigModel):
    """Agents to run after this one (upstream's ``chain``)."""

    mode: Literal["sequential", "parallel"] = "sequential"
    max_depth: int = Field(5, ge=1, le=10)
    on_complete: list[ChainStep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_default(self) -> ChainSpec:
        defaults = [i for i, step in enumerate(self.on_complete) if step.default]
        if len(defaults) > 1:
            raise config_error(
                "at most one chained agent may be the default", field=f"on_complete.{defaults[1]}"
            )
        return self

    @model_validator(mode="after")
    def _parallel_guards_see_no_sibling(self) -> ChainSpec:
        """Under ``parallel`` every guard is evaluated before any link runs, so a ``when``
        reading a sibling's result would always be false: refused, as upstream does."""
        if self.mode != "parallel":
            return self
        siblings = {step.agent for step in self.on_complete}
        for i, step in enumerate(self.on_complete):
            for sibling in siblings:
                if step.when and f"steps.{sibling}" in step.when:
                    raise config_error(
                        f"the 'when' of '{step.agent}' reads 'steps.{sibling}', a sibling in a"
                        " parallel chain, whose guards are all evaluated before any link runs;"
                        " use mode: sequential",
                        field=f"on_complete.{i}.when",
                    )
        return self


class AgentSpec(ConfigModel):
    """``spec`` of an Agent."""

    identity: Identity = Field(default_factory=Identity)
    model: ModelSpec
    prompts: Prompts = Field(default_factory=Prompts)
    output_schema: dict[str, Any] | None = None
    orchestration: OrchestrationSpec = Field(default_factory=OrchestrationSpec)
    tools: list[AnyTool] = Field(default_factory=list)
    memory: MemorySpec = Field(default_factory=MemorySpec)
    guardrails: GuardrailsSpec = Field(default_factory=GuardrailsSpec)
    permissions: Permissions = Field(default_factory=Permissions)
    chain: ChainSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _within_limits(cls, data: Any) -> Any:
        return check_spec_limits(data)

    @field_validator("output_schema", mode="before")
    @classmethod
    def _output_schema(cls, value: Any) -> dict[str, Any] | None:
        """Upstream's shorthand expanded, and the schema bounded (see
        :mod:`astromesh.structured.schema`): a bad one is a load error on its line."""
        if value is None:
            return None
        try:
            schema = normalize_output_schema(value)
            check_output_schema(schema)
        except SchemaError as exc:
            field = ".".join(str(p) for p in exc.path) or None
            raise config_error(f"output_schema {exc.message}", field=field) from None
        return schema

    @model_validator(mode="after")
    def _unique_tool_names(self) -> AgentSpec:
        seen: dict[str, int] = {}
        for i, tool in enumerate(self.tools):
            if tool.name in seen:
                raise config_error(
                    f"duplicate tool name '{tool.name}' (also tools[{seen[tool.name]}])",
                    field=f"tools.{i}.name",
                )
            seen[tool.name] = i
        return self

    @model_validator(mode="after")
    def _members_from_agent_tools(self) -> AgentSpec:
        """A supervisor without ``workers`` (a swarm without ``agents``) coordinates the agents
        its ``type: agent`` tools call, as upstream's multi-agent docs write it."""
        field = MEMBER_FIELDS.get(self.orchestration.pattern)
        if field is None or getattr(self.orchestration, field):
            return self
        members = list(dict.fromkeys(t.agent for t in self.tools if isinstance(t, AgentToolConfig)))
        if not members:
            raise config_error(
                f"pattern '{self.orchestration.pattern}' needs '{field}' (a non-empty list of"
                " agent names) or tools of type 'agent'",
                field=f"orchestration.{field}"
                if field in self.orchestration.model_fields_set
                else "orchestration.pattern",
            )
        self.orchestration = self.orchestration.model_copy(update={field: members})
        return self

    @model_validator(mode="after")
    def _stage_tools(self) -> AgentSpec:
        """A pipeline's ``tool`` stage names one of this agent's tools that it may use: caught
        here, with the nearest name, rather than as a failed run."""
        names = [tool.name for tool in self.tools]
        for i, stage in enumerate(self.orchestration.stages or []):
            if stage.tool is None:
                continue
            field = f"orchestration.stages.{i}.tool"
            if stage.tool not in names:
                hint = suggest(stage.tool, names)
                raise config_error(
                    with_suggestion(
                        f"stage '{stage.name}': tool '{stage.tool}' is not in spec.tools", hint
                    ),
                    field=field,
                    suggestion=hint,
                )
            if not self.permissions.allows(stage.tool):
                raise config_error(
                    f"stage '{stage.name}': tool '{stage.tool}' is not in "
                    "permissions.allowed_actions",
                    field=field,
                )
        return self


class AgentDocument(ConfigDocument):
    """``kind: Agent``."""

    kind: Literal["Agent"]
    spec: AgentSpec

    @property
    def description(self) -> str:
        """The identity's description, else upstream's ``metadata.description``, or empty."""
        return self.spec.identity.description or self.metadata.description or ""

    def summary(self) -> dict[str, Any]:
        """The entry of ``GET /v1/agents``: name, version, namespace, description, pattern."""
        return {
            "name": self.metadata.name,
            "version": self.metadata.version,
            "namespace": self.metadata.namespace,
            "description": self.description,
            "display_name": self.spec.identity.display_name or self.metadata.name,
            "pattern": self.spec.orchestration.pattern,
            "labels": dict(self.metadata.labels),
        }
