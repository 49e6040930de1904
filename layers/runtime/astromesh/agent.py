"""An agent as the runtime runs it: its validated config plus its services, built once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from astromesh.guardrails import GuardrailChain
from astromesh.memory.conversational import ConversationalMemory
from astromesh.models.router import ModelRouter
from astromesh.orchestration.base import Pattern
from astromesh.prompts.render import PromptTemplate, base_variables
from astromesh.runs.state import RunState
from astromesh.stores.base import SessionKey
from astromesh.structured.answer import instructions
from astromesh.telemetry.metrics import Metrics, NullMetrics
from astromesh.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from astromesh.config import AgentDocument
    from astromesh.memory.episodic import EpisodicLog
    from astromesh.memory.semantic import SemanticMemory


@dataclass
class Agent:
    """A ready-to-run agent. Built by :class:`~astromesh.runtime.AgentRuntime`, shared by runs."""

    config: AgentDocument
    router: ModelRouter
    tools: ToolRegistry
    memory: ConversationalMemory
    pattern: Pattern
    system_prompt: PromptTemplate | None
    max_iterations: int
    timeout_seconds: float
    guardrails: GuardrailChain = field(default_factory=GuardrailChain)
    semantic: SemanticMemory | None = None
    episodic: EpisodicLog | None = None
    context_window: int = 4096
    """Tokens the primary model accepts (prompt and answer); the context builder fits the
    prompt into this minus ``reserve_output``."""
    reserve_output: int = 512
    metrics: Metrics = field(default_factory=NullMetrics)
    """Where the run's ending is counted (the runtime's sink, shared by its agents)."""
    capture_content: bool = False
    """Message content (prompts, answers, tool arguments and results) goes on this agent's
    spans, after its PII redaction (:mod:`astromesh.telemetry.content`)."""

    @property
    def name(self) -> str:
        return self.config.metadata.name

    @property
    def namespace(self) -> str:
        return self.config.metadata.namespace

    def session_key(self, session_id: str, tenant: str = "default") -> SessionKey:
        return SessionKey(
            agent=self.name, session_id=session_id, namespace=self.namespace, tenant=tenant
        )

    def render_system_prompt(self, run: RunState) -> str:
        """The rendered system prompt, closed by the output format section when the agent
        declares ``spec.output_schema`` (every pattern then sees what the answer must be)."""
        rendered = ""
        if self.system_prompt is not None:
            rendered = self.system_prompt.render(
                system_prompt_variables(
                    self.config, self.tools, context=run.context or {}, session_id=run.session_id
                )
            )
        schema = self.config.spec.output_schema
        if schema is not None:
            rendered = f"{rendered}\n\n{instructions(schema)}".strip()
        return rendered

    async def aclose(self) -> None:
        await self.router.aclose()
        await self.tools.aclose()


def system_prompt_variables(
    config: AgentDocument,
    tools: ToolRegistry,
    *,
    context: Mapping[str, Any],
    session_id: str,
) -> dict[str, Any]:
    """What a system prompt is rendered with; one function so the trial render at build time
    sees the same variables (the agent, its real tools) as a run. The run's context is
    ``context`` and, as upstream renders it, each of its keys on its own (``{{ company }}``)
    unless it names one of the variables below, which win."""
    identity = config.spec.identity
    meta = config.metadata
    spread = {k: v for k, v in context.items() if isinstance(k, str) and k.isidentifier()}
    return spread | base_variables(
        agent={
            "name": meta.name,
            "namespace": meta.namespace,
            "version": meta.version,
            "display_name": identity.display_name if identity else None,
            "description": (identity.description if identity else None) or meta.description,
            "role": identity.role if identity else None,
            "personality": identity.personality if identity else None,
        },
        context=context,
        session_id=session_id,
        tools=[tool.definition.model_dump() for tool in tools.available()],
    )
