"""AgentRuntime: the control plane. Loads ``astromesh/v1`` documents, builds agents, runs them.

Each agent's services (model router, tools, memory, prompt, pattern) are built once, on
first use, and shared by every run of that agent in this process (a warm Lambda instance or
the local server). A document that fails validation is reported in :attr:`issues` and its
agent is simply absent; the others load. An agent that validates but cannot be built here
(a webhook URL the SSRF guard refuses, a python tool that does not import) is *skipped*:
:meth:`check_agents` builds every agent up front (the server does it on first use of its
catalog, ``astromesh validate`` too), and a skipped agent is left out of
:meth:`agent_names`, reported in :attr:`skipped` with its file, line and field, and refused
with :class:`~astromesh.errors.AgentUnrunnable` (409) instead of failing every run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astromesh import pipeline
from astromesh.agent import Agent, system_prompt_variables
from astromesh.chains import check_chain
from astromesh.config import load_path
from astromesh.config.unrunnable import build_issue
from astromesh.errors import (
    AgentUnrunnable,
    AstromeshError,
    ConfigurationError,
    NotFoundError,
    StateUnavailable,
)
from astromesh.executors.local import LocalExecutor
from astromesh.guardrails import BudgetLedger, build_guardrails, build_ledger
from astromesh.guardrails.ledger import DEFAULT_REDIS_PREFIX as DEFAULT_BUDGET_PREFIX
from astromesh.memory.conversational import ConversationalMemory, build_memory
from astromesh.models.breaker import CircuitBreaker
from astromesh.models.factory import breaker_for, build_router
from astromesh.models.health import HealthChecks
from astromesh.models.router import ModelRouter
from astromesh.orchestration import build_pattern, wiring
from astromesh.orchestration.base import Fail
from astromesh.prompts.render import PromptTemplate
from astromesh.runs.events import EventSink, discard
from astromesh.runs.state import RunState, RunStatus
from astromesh.security.grants import FILE_AGENT_GRANTS, Grants
from astromesh.stores.base import RunStore, StateBackend
from astromesh.telemetry.content import capture_from_env
from astromesh.telemetry.metrics import Metrics, metrics_from_env
from astromesh.tools.agent import AgentDepthExceeded
from astromesh.tools.builtin import router_summariser
from astromesh.tools.registry import build_registry, check_agent_name

if TYPE_CHECKING:
    from astromesh.config import AgentDocument, ConfigIssue, LoadResult
    from astromesh.config.agent import SemanticMemory as SemanticMemoryConfig
    from astromesh.config.orchestration import OrchestrationSpec
    from astromesh.memory.episodic import EpisodicLog
    from astromesh.memory.semantic import SemanticMemory
    from astromesh.orchestration.base import Pattern
    from astromesh.rag.pipeline import PipelineRegistry
    from astromesh.tools.builtin.cache_store import ToolCache
    from astromesh.tools.factory import Ingester
    from astromesh.tools.rag import Retriever
    from astromesh.tools.registry import ToolRegistry
    from astromesh.tools.ssrf import SSRFGuard

logger = logging.getLogger(__name__)

AGENTS_DIR_ENV = "ASTROMESH_AGENTS_DIR"
STATE_BACKEND_ENV = "ASTROMESH_STATE_BACKEND"
STATE_PATH_ENV = "ASTROMESH_STATE_PATH"
REDIS_URL_ENV = "ASTROMESH_REDIS_URL"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
"""Where an agent's ``redis`` memory goes when nothing configures Redis: upstream's default,
so its agents (``backend: redis`` and no URL) run as they do there."""
POSTGRES_DSN_ENV = "ASTROMESH_POSTGRES_DSN"
BUDGET_PREFIX_ENV = "ASTROMESH_BUDGET_PREFIX"
"""Key prefix of the shared budget ledger in Redis (default ``astromesh:budget``)."""
DEFAULT_STATE_PATH = ".astromesh/state.db"
LAMBDA_WRITABLE = Path("/tmp")
DEFAULT_RESERVE_OUTPUT = 512
"""Tokens kept free for the answer when the model's ``max_tokens`` is not set."""
MAX_AGENT_DEPTH = 4
"""How deep agents may call agents (a run started by a caller is depth 0)."""


def child_run_id(parent_id: str, key: str) -> str:
    """The id of ``parent_id``'s child started under ``key``: stable, shaped like any run id."""
    return "run_" + hashlib.sha256(f"{parent_id}:{key}".encode()).hexdigest()[:32]


async def abandon_run(runs: RunStore, run_id: str) -> None:
    """Mark a child run its caller stopped waiting for as cancelled (best effort: a run that
    ended meanwhile, or a store that cannot be written, is left as it is)."""
    try:
        run = await runs.get(run_id)
        if run.status.is_terminal:
            return
        pipeline.stop(
            run,
            Fail(
                "cancelled: its caller stopped waiting",
                status=RunStatus.CANCELLED,
                code="cancelled",
            ),
            answer="",
        )
        await runs.save(run)
    except AstromeshError as exc:
        logger.warning("run_id=<%s> | abandoned child not marked cancelled: %s", run_id, exc)


def default_agents_dir() -> Path:
    return Path(os.environ.get(AGENTS_DIR_ENV, "agents"))


class AgentRuntime:
    """Serves agents by name from one folder of ``astromesh/v1`` documents.

    Args:
        agents_dir: folder (or single file) of documents; defaults to ``$ASTROMESH_AGENTS_DIR``
            or ``agents/``.
        env: environment for ``${VAR}`` interpolation and API keys (``os.environ`` by default).
        state: the backend for runs and history; when omitted it is opened from the
            RuntimeConfig document or the ``ASTROMESH_STATE_*`` settings (SQLite by default).
        metrics: where the runtime's metrics go; :func:`metrics_from_env` of ``env`` by default.
            The local server passes ``metrics_from_env(meter=...)`` with its Prometheus meter.
        offline: every state backend is an in-memory one, whatever the documents say: for
            building agents to check them (``astromesh validate``) without creating or
            reaching a store.
        config: documents already loaded (``astromesh validate FILE`` loads the file with
            the documents beside it); ``agents_dir`` is then only where relative paths start.
    """

    def __init__(
        self,
        agents_dir: str | Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        state: StateBackend | None = None,
        metrics: Metrics | None = None,
        offline: bool = False,
        config: LoadResult | None = None,
    ) -> None:
        self.agents_dir = Path(agents_dir) if agents_dir is not None else default_agents_dir()
        self.offline = offline
        self.env: Mapping[str, str] = os.environ if env is None else env
        self._state = state
        self._owns_state = state is None
        self._backends: dict[str, StateBackend] = {}
        self._breaker: CircuitBreaker | None = None
        self.health_checks = HealthChecks()
        """Health evidence of every agent's model candidates (see
        :mod:`astromesh.models.health`); a long-lived server may run its background loop with
        ``async with runtime.health_checks.running():``."""
        self.metrics: Metrics = metrics if metrics is not None else metrics_from_env(self.env)
        """Where circuit opens, finished and failed runs and run costs are counted (EMF in
        Lambda)."""
        self._ledger: BudgetLedger | None = None  # cost_limit's shared budgets, built once
        self._tool_cache: ToolCache | None = None  # cache_store's values, built once
        self._rag: PipelineRegistry | None = None
        self._agents: dict[str, Agent] = {}
        self._build_lock = asyncio.Lock()
        self.config: LoadResult = (
            config if config is not None else load_path(self.agents_dir, env=self.env)
        )
        self.skipped: dict[str, ConfigIssue] = {}
        """File agents that validate but cannot be built here, with where and why; they
        are not in :meth:`agent_names` and running one raises ``AgentUnrunnable``."""
        self._checked = False

    # -- documents -------------------------------------------------------------------------

    @property
    def issues(self) -> list[ConfigIssue]:
        """Every problem found while loading; the affected documents are skipped."""
        return self.config.errors

    def agent_names(self) -> list[str]:
        """The agents that can run: every valid document's, less the :attr:`skipped` ones."""
        return sorted(name for name in self.config.agents if name not in self.skipped)

    async def check_agents(self) -> dict[str, ConfigIssue]:
        """Build every file agent not built yet, once per runtime; return :attr:`skipped`.

        A :class:`ConfigurationError` skips the agent for this process's life (its file is
        what must change), logged with its file, line and field. Any other failure (the
        state store being down while an agent's memory opens it) skips nothing: the agent
        is built again on its first run.
        """
        if self._checked:
            return self.skipped
        for name in sorted(self.config.agents):
            try:
                await self.get(name)
            except AgentUnrunnable:
                continue  # recorded and logged by get
            except StateUnavailable as exc:
                logger.warning("agent=<%s> | not checked, the state is down: %s", name, exc)
                return self.skipped  # checked again on the next call
            except Exception:
                logger.exception("agent=<%s> | not checked, its build failed unexpectedly", name)
        self._checked = True
        return self.skipped

    def describe(self, name: str) -> AgentDocument:
        try:
            return self.config.agents[name]
        except KeyError:
            raise NotFoundError(self._unknown_agent_message(name)) from None

    # -- state -----------------------------------------------------------------------------

    async def state(self) -> StateBackend:
        """The backend that holds runs (opened on first use)."""
        if self._state is None:
            self._state = await self._backend(self._default_state_kind())
        return self._state

    def _default_state_kind(self) -> str:
        runtime_doc = self.config.runtime
        if runtime_doc is not None and runtime_doc.spec.state is not None:
            return runtime_doc.spec.state.backend
        return self.env.get(STATE_BACKEND_ENV, "sqlite")

    async def _backend(self, kind: str) -> StateBackend:
        """Open (once) the backend of ``kind``; the RuntimeConfig document wins over env."""
        if kind not in self._backends:
            from astromesh.stores.factory import open_backend

            cfg = self.config.runtime.spec.state if self.config.runtime else None
            backend = open_backend(
                "memory" if self.offline else kind,
                sqlite_path=self.sqlite_path(),
                redis_url=(cfg and cfg.redis_url)
                or self.env.get(REDIS_URL_ENV)
                or (DEFAULT_REDIS_URL if kind == "redis" else None),
                postgres_dsn=(cfg and cfg.postgres_dsn) or self.env.get(POSTGRES_DSN_ENV),
            )
            await backend.open()
            self._backends[kind] = backend
        return self._backends[kind]

    # -- agents ----------------------------------------------------------------------------

    async def get(self, name: str) -> Agent:
        """The built agent (built on first request, then shared).

        Raises:
            NotFoundError: no valid document defines this agent.
            AgentUnrunnable: the document is valid but cannot be built here (a missing
                model file, a tool handler that does not import...): the agent is skipped
                from then on (see :attr:`skipped`).
        """
        if name in self._agents:
            return self._agents[name]
        if name in self.skipped:
            raise self._unrunnable(name)
        async with self._build_lock:
            try:
                return await self._get_or_build(name, ())
            except AgentUnrunnable:
                raise
            except ConfigurationError as exc:
                if name not in self.config.agents:
                    raise
                issue = build_issue(self.config.agents[name], exc)
                self.skipped[name] = issue
                logger.error("agent=<%s> | skipped, it cannot run: %s", name, issue)
                raise self._unrunnable(name) from None

    def _unrunnable(self, name: str) -> AgentUnrunnable:
        error = AgentUnrunnable(
            f"agent {name!r} cannot run: its configuration was refused when it was loaded"
            f" ({self.skipped[name]}); fix the file and restart"
        )
        error.field = self.skipped[name].field or None
        return error

    async def _get_or_build(self, name: str, building: tuple[str, ...]) -> Agent:
        """Build under the lock; ``building`` is the chain of swarms that led here, so a
        swarm that (indirectly) contains itself is refused instead of recursing forever."""
        if name not in self._agents:
            if name in building:
                chain = " -> ".join((*building, name))
                raise ConfigurationError(f"swarm agents contain each other: {chain}")
            self._agents[name] = await self._build(self.describe(name), (*building, name))
        return self._agents[name]

    async def _build(
        self,
        doc: AgentDocument,
        building: tuple[str, ...] = (),
        grants: Grants = FILE_AGENT_GRANTS,
    ) -> Agent:
        spec = doc.spec
        if spec.chain is not None:  # a missing agent or a loop is refused before any run
            check_chain(doc.metadata.name, spec.chain, self.config.agents)
        defaults = self.config.runtime.spec.defaults.orchestration if self.config.runtime else None
        orchestration = spec.orchestration.with_defaults(defaults)
        system = spec.prompts.system if spec.prompts else None
        folder = self.agents_dir if self.agents_dir.is_dir() else self.agents_dir.parent
        grants = grants.narrowed(spec.permissions, base=folder)
        router = self._build_router(doc, guard=grants.model_guard())
        try:
            tools = await build_registry(
                spec.tools,
                allowed_actions=spec.permissions.allowed_actions if spec.permissions else None,
                search_path=folder,
                known_agents=self.config.agents.keys(),
                summariser=router_summariser(router),
                retriever_for=self._retriever_for,
                ingester_for=self._ingester_for,
                cache=self._cache_store(),
                env=grants.tool_env(self.env),
                grants=grants,
            )
        except BaseException:
            await router.aclose()
            raise
        memory_spec = spec.memory
        primary = router.primary()
        try:
            return Agent(
                config=doc,
                router=router,
                tools=tools,
                guardrails=build_guardrails(
                    spec.guardrails,
                    ledger=self._budget_ledger(),
                    budgets_per_tenant=grants.registered,
                ),
                memory=await self._build_memory(doc, router),
                pattern=await self._build_pattern(doc, orchestration, tools, building),
                system_prompt=self._system_prompt(doc, system, tools),
                max_iterations=orchestration.max_iterations,
                timeout_seconds=orchestration.timeout_seconds,
                capture_content=self._capture_content(),
                semantic=await self._build_semantic(memory_spec.semantic if memory_spec else None),
                episodic=(
                    await self._build_episodic(memory_spec.episodic.backend)
                    if memory_spec and memory_spec.episodic
                    else None
                ),
                context_window=primary.capabilities.context_window,
                reserve_output=primary.params.max_tokens or DEFAULT_RESERVE_OUTPUT,
                metrics=self.metrics,
            )
        except BaseException:  # what the tools and router hold must not leak
            await tools.aclose()
            await router.aclose()
            raise

    @staticmethod
    def _system_prompt(
        doc: AgentDocument, system: str | None, tools: ToolRegistry
    ) -> PromptTemplate | None:
        """The compiled system prompt, trial-rendered with the agent's real tools so a template
        that goes over the sandbox's budget is refused here (a 422 at registration), not in
        every run.

        Raises:
            ConfigurationError: it does not compile, or the trial render goes over a limit.
        """
        if not system:
            return None
        template = PromptTemplate(
            f"{doc.metadata.name}.system", system, field="spec.prompts.system"
        )
        template.check(system_prompt_variables(doc, tools, context={}, session_id="trial"))
        return template

    def _ingester_for(self, name: str | None) -> tuple[str, Ingester]:
        """What a ``rag_ingest`` builtin calls: the named (or only) pipeline's ingest."""
        pipeline, _ = self._retriever_for(name)

        async def ingest(document: str, metadata: dict[str, Any], prefix: str) -> dict[str, Any]:
            found = await (await (await self.rag()).get(pipeline)).ingest(
                document, metadata, prefix
            )
            return {"doc_id": found.doc_id, "status": found.status, "chunks": len(found.chunks)}

        return pipeline, ingest

    def _retriever_for(self, name: str | None) -> tuple[str, Retriever]:
        """What a ``rag`` tool calls: the named pipeline's query (checked at build time). A
        tool that names none (upstream's templates) gets the only pipeline there is."""
        if name is None:
            if len(self.config.rag_pipelines) != 1:
                known = ", ".join(sorted(self.config.rag_pipelines)) or "none"
                raise ConfigurationError(
                    "rag tool names no pipeline and there is not exactly one to use (known"
                    f" pipelines: {known}); add `pipeline: <RAGPipeline name>`"
                )
            name = next(iter(self.config.rag_pipelines))
        pipeline = name
        if pipeline not in self.config.rag_pipelines:
            known = ", ".join(sorted(self.config.rag_pipelines)) or "none"
            raise ConfigurationError(
                f"rag tool: unknown RAG pipeline {pipeline!r} (known pipelines: {known})"
            )

        async def retrieve(query: str, top_k: int) -> list[dict[str, Any]]:
            return await (await (await self.rag()).get(pipeline)).query(query, top_k)

        return pipeline, retrieve

    async def _build_pattern(
        self,
        doc: AgentDocument,
        orchestration: OrchestrationSpec,
        tools: ToolRegistry,
        building: tuple[str, ...],
    ) -> Pattern:
        """The pattern, with the agents it calls checked and their tools in ``tools``.

        Agents a pattern runs as child runs (stages, targets, workers) get an always-permitted
        agent tool; a swarm's members are built here and their tools registered as
        ``member/tool``.

        Raises:
            ConfigurationError: a referenced agent is not defined, a fan-out role is not
                declared, or swarms contain each other.
        """
        called = wiring.called_agents(orchestration)
        for where, name in called + wiring.swarm_agents(orchestration):
            check_agent_name(
                name, self.config.agents.keys(), where=f"agent {doc.metadata.name!r} {where}"
            )
        wiring.check_fan_out_roles(orchestration, doc.spec.model.roles())
        wiring.add_agent_tools(tools, [name for _, name in called], self._agent_description)
        members = {
            name: await self._get_or_build(name, building)
            for _, name in wiring.swarm_agents(orchestration)
        }
        pattern = build_pattern(orchestration, members=members)
        if orchestration.pattern == "swarm":  # the swarm's module only for swarms
            from astromesh.orchestration.swarm import SwarmPattern

            assert isinstance(pattern, SwarmPattern)
            for tool in pattern.member_tools():
                tools.add(tool, always_allowed=True)
            for toolset in pattern.member_toolsets():  # members' MCP tools, on first use
                tools.add_toolset(toolset, always_allowed=True)
        return pattern

    def _agent_description(self, name: str) -> str:
        """What a pattern's tool for agent ``name`` is described as (its identity)."""
        doc = self.config.agents[name]
        return doc.description or f"Ask the agent '{name}' to handle a request."

    def _capture_content(self) -> bool:
        """Whether message content goes on spans (RuntimeConfig, or the conventions' env)."""
        runtime_doc = self.config.runtime
        if runtime_doc is not None and runtime_doc.spec.telemetry.capture_message_content:
            return True
        return capture_from_env(self.env)

    def _build_router(self, doc: AgentDocument, *, guard: SSRFGuard | None = None) -> ModelRouter:
        """The agent's router; one circuit breaker per runtime, so every agent calling the
        same backend sees the same circuit (in Redis when configured: every instance does).
        ``guard``: what candidates outside the ProviderConfig connect through (registered
        agents)."""
        if self._breaker is None:
            cfg = self.config.runtime.spec.state if self.config.runtime else None
            redis_url = (cfg and cfg.redis_url) or self.env.get(REDIS_URL_ENV)
            self._breaker = breaker_for(self.config.routing, redis_url, metrics=self.metrics)
        return build_router(
            doc,
            self.config.providers,
            self.config.routing,
            self.env,
            self._breaker,
            health_checks=self.health_checks,
            guard=guard,
        )

    def tool_cache(self) -> ToolCache:
        """Where ``cache_store`` keeps values: one per runtime, shared by its agents' tools
        and a workflow's tool steps."""
        return self._cache_store()

    def _cache_store(self) -> ToolCache:
        """Where ``cache_store`` builtins keep values: in Redis when a Redis URL is configured
        (every instance sees the same values), in this process's memory otherwise."""
        if self._tool_cache is None:
            from astromesh.tools.builtin.cache_store import build_tool_cache

            cfg = self.config.runtime.spec.state if self.config.runtime else None
            self._tool_cache = build_tool_cache(
                (cfg and cfg.redis_url) or self.env.get(REDIS_URL_ENV)
            )
        return self._tool_cache

    def _budget_ledger(self) -> BudgetLedger:
        """The one ledger of ``cost_limit``'s shared budgets (per session, per agent per day),
        handed to every agent's guardrails: in Redis when a Redis URL is configured, so every
        instance counts into the same budgets; in memory (this process only) otherwise."""
        if self._ledger is None:
            cfg = self.config.runtime.spec.state if self.config.runtime else None
            self._ledger = build_ledger(
                (cfg and cfg.redis_url) or self.env.get(REDIS_URL_ENV),
                prefix=self.env.get(BUDGET_PREFIX_ENV) or DEFAULT_BUDGET_PREFIX,
            )
        return self._ledger

    async def _build_memory(self, doc: AgentDocument, router: ModelRouter) -> ConversationalMemory:
        conv = doc.spec.memory.conversational if doc.spec.memory else None
        if conv is None:
            return build_memory(
                (await self.state()).history,
                strategy="sliding_window",
                max_turns=20,
                max_tokens=None,
            )
        backend = (
            await self.state()
            if conv.backend == self._default_state_kind()
            else await self._backend(conv.backend)
        )
        summary = conv.strategy == "summary"
        if summary:
            from astromesh.memory.summary import build_summary_store, model_summarizer
        return build_memory(
            backend.history,
            strategy=conv.strategy,
            max_turns=conv.max_turns,
            max_tokens=conv.max_tokens,
            summarizer=model_summarizer(router) if summary else None,
            summaries=build_summary_store(backend) if summary else None,
        )

    async def _build_episodic(self, backend: str) -> EpisodicLog:
        from astromesh.memory.episodic import build_episodic_memory  # for agents keeping one

        return build_episodic_memory(await self._backend(backend))

    async def _build_semantic(self, config: SemanticMemoryConfig | None) -> SemanticMemory | None:
        """Semantic memory; a pgvector one shares the state database's DSN."""
        if config is None:
            return None
        from astromesh.memory.semantic import build_semantic_memory

        cfg = self.config.runtime.spec.state if self.config.runtime else None
        return build_semantic_memory(
            config,
            sqlite_path=self.sqlite_path().with_name("semantic.db"),
            postgres_dsn=(cfg and cfg.postgres_dsn) or self.env.get(POSTGRES_DSN_ENV),
        )

    async def rag(self) -> PipelineRegistry:
        """The RAG pipelines of the loaded documents, each built on first use."""
        if self._rag is None:
            from astromesh.rag.pipeline import PipelineRegistry

            self._rag = PipelineRegistry(
                self.config.rag_pipelines, env=self.env, state=await self.state()
            )
        return self._rag

    def _unknown_agent_message(self, name: str) -> str:
        from difflib import get_close_matches

        hint = get_close_matches(name, self.config.agents, n=1)
        known = ", ".join(self.agent_names()) or "none"
        suffix = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"agent {name!r} not found{suffix} (known agents: {known})"

    # -- runs ------------------------------------------------------------------------------

    async def build(self, doc: AgentDocument, *, grants: Grants = FILE_AGENT_GRANTS) -> Agent:
        """Build an agent from a document this runtime did not load (one registered through
        the API, with the registration policy's ``grants``); it shares the runtime's
        backends, breaker and RAG pipelines."""
        return await self._build(doc, grants=grants)

    def state_dirs(self) -> list[Path]:
        """Folders holding this runtime's own state (the SQLite databases), which no agent's
        file tool may read."""
        path = self.sqlite_path()
        return [(path if path.is_absolute() else Path.cwd() / path).parent]

    def sqlite_path(self) -> Path:
        """Where the SQLite state lives: the RuntimeConfig's ``sqlite_path``, else
        ``ASTROMESH_STATE_PATH`` (empty counts as unset: the templates declare it empty for sam),
        else ``.astromesh/state.db``. In Lambda a relative path is taken from ``/tmp``, the only
        writable folder (the code folder is read-only, and the shipped ``agents/runtime.yaml``
        names a relative path)."""
        cfg = self.config.runtime.spec.state if self.config.runtime else None
        path = Path((cfg and cfg.sqlite_path) or self.env.get(STATE_PATH_ENV) or DEFAULT_STATE_PATH)
        if not path.is_absolute() and self.env.get("AWS_LAMBDA_FUNCTION_NAME"):
            return LAMBDA_WRITABLE / path
        return path

    async def create_run(
        self,
        agent: Agent,
        query: str,
        *,
        session_id: str = "default",
        context: dict[str, object] | None = None,
        tenant: str = "default",
    ) -> RunState:
        """Store a new run of ``agent`` (status ``running``), ready for :meth:`execute`.

        Separate from :meth:`execute` so a channel can answer with the run id (an async
        request) or start streaming before the loop begins.

        The agent's input guardrails screen the query and the context first
        (:func:`astromesh.pipeline.screen`): the run's first write already holds the redacted
        text, and a blocked input is stored as the placeholder only, its run ending on its
        first stage.
        """
        runs = (await self.state()).runs
        run = RunState(
            agent=agent.name,
            namespace=agent.namespace,
            session_id=session_id,
            query=query,
            context=context,
            tenant=tenant,
        )
        await pipeline.screen(run, agent)
        return await runs.create(run)

    async def execute(
        self, run: RunState, agent: Agent, on_event: EventSink | None = None
    ) -> RunState:
        """Drive a created run to its end in-process (agent tools' child runs wired in)."""
        return await self._executor((await self.state()).runs).execute(
            run, agent, on_event or discard
        )

    async def resume(
        self, run: RunState, agent: Agent, on_event: EventSink | None = None
    ) -> RunState:
        """Continue a run whose client tool calls were answered (see
        :func:`astromesh.tools.client.submit_tool_outputs`), without preparing it again."""
        return await self._executor((await self.state()).runs).resume(
            run, agent, on_event or discard
        )

    async def run(
        self,
        agent_name: str,
        query: str,
        *,
        session_id: str = "default",
        context: dict[str, object] | None = None,
        tenant: str = "default",
        on_event: EventSink | None = None,
    ) -> RunState:
        """Run an agent to completion in-process and return the persisted run."""
        agent = await self.get(agent_name)
        run = await self.create_run(
            agent, query, session_id=session_id, context=context, tenant=tenant
        )
        return await self.execute(run, agent, on_event)

    async def run_child(
        self,
        parent: RunState,
        agent_name: str,
        query: str,
        key: str | None = None,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> RunState:
        """Run ``agent_name`` as a child of ``parent`` (an agent tool's call) and return it.

        The child is a run of its own: stored with ``parent_run_id`` and ``depth``, in the
        session ``<parent session>/<agent>`` so its memory never mixes with the parent's
        conversation, with the parent's context (and ``context``, what an agent tool's
        ``context_transform`` rendered, over it). Its events are not forwarded: the parent
        reports the call as a tool call.

        With ``key`` (the call that starts it, unique within the parent) the child's id is
        derived from the parent's id and ``key``: when the call is repeated (Step Functions
        retrying a tool executor that died), the child the first attempt stored is found
        again and returned if it ended, or carried on from its last checkpoint, instead of
        a second child being started and the first orphaned.

        Raises:
            AgentDepthExceeded: the child would nest deeper than :data:`MAX_AGENT_DEPTH`
                (an agent calling agents in a loop stops here).
        """
        depth = parent.depth + 1
        if depth > MAX_AGENT_DEPTH:
            raise AgentDepthExceeded(
                f"agent {agent_name!r} was not started: agent calls nest at most "
                f"{MAX_AGENT_DEPTH} deep and run {parent.id} is already at depth {parent.depth}"
            )
        agent = await self.get(agent_name)
        runs = (await self.state()).runs
        child_id = child_run_id(parent.id, key) if key is not None else None
        if child_id is not None:
            try:
                earlier = await runs.get(child_id)
            except NotFoundError:
                pass
            else:
                if earlier.status.is_terminal:
                    return earlier
                executor = self._executor(runs)
                if earlier.messages:  # it got past prepare: on from its last checkpoint
                    return await executor.resume(earlier, agent, discard)
                return await executor.execute(earlier, agent, discard)
        child = RunState(
            **({"id": child_id} if child_id is not None else {}),
            agent=agent.name,
            namespace=agent.namespace,
            session_id=f"{parent.session_id}/{agent.name}",
            query=query,
            context={**(parent.context or {}), **context} if context else parent.context,
            tenant=parent.tenant,
            parent_run_id=parent.id,
            depth=depth,
        )
        await pipeline.screen(child, agent)  # the child agent's own input guardrails
        child = await runs.create(child)
        try:
            return await self._executor(runs).execute(child, agent, discard)
        except asyncio.CancelledError:
            # The caller stopped waiting (a chain link's or a tool call's timeout): the child
            # is ended as cancelled rather than left "running" in the store for ever.
            await abandon_run(runs, child.id)
            raise

    def _executor(self, runs: RunStore) -> LocalExecutor:
        return LocalExecutor(runs, run_child=self.run_child)

    async def close(self) -> None:
        """Close every agent's providers and every backend this runtime opened."""
        for agent in self._agents.values():
            await agent.aclose()
        self._agents.clear()
        if self._rag is not None:
            await self._rag.close()
            self._rag = None
        for backend in self._backends.values():
            await backend.close()
        self._backends.clear()
        if self._breaker is not None:
            await self._breaker.aclose()
            self._breaker = None
        if self._ledger is not None:
            await self._ledger.aclose()
            self._ledger = None
        if self._tool_cache is not None:
            await self._tool_cache.aclose()
            self._tool_cache = None
        if self._owns_state:
            self._state = None

    async def __aenter__(self) -> AgentRuntime:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
