"""AgentCatalog: the one place where the channels meet the runtime's agents.

Registered agents belong to a tenant (the one of the key that registered them), so a name
resolves *for a tenant*: to that tenant's registered agent (from the durable registry,
shared by every instance), else to the file agent of that name (the agents folder's
read-only defaults, shared by every tenant). Another tenant's agent is never found, so it
answers exactly like a name nobody uses. Built agents are cached per process by
``(tenant, name)`` and rebuilt when the registry's revision or text of an agent moves on (a
deleted agent registered again starts over at revision 1), so an update made through one
Lambda instance reaches the others on their next request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Literal

from astromesh.agent import Agent
from astromesh.channels.drafts import Draft, file_drafts
from astromesh.channels.errors import InvalidAgent
from astromesh.config import AgentDocument, ConfigIssue, load_text
from astromesh.config.yaml_source import YamlDocument, parse_documents
from astromesh.errors import AgentUnrunnable, ConfigurationError, ConflictError, NotFoundError
from astromesh.registry import (
    FILE_AGENTS,
    AgentRegistry,
    AgentStatus,
    RegisteredAgent,
    StatusKey,
)
from astromesh.runtime import AgentRuntime
from astromesh.security.policy import RegistrationPolicy
from astromesh.text_boundary import INVALID_TEXT, InvalidText, TextIssue, document_issues

logger = logging.getLogger(__name__)

REQUEST_SOURCE = "<request>"
"""The ``file`` of issues found in a posted document."""

Origin = Literal["file", "registered"]


# -- The catalog --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """An agent as the API shows it."""

    name: str
    document: AgentDocument
    origin: Origin
    status: AgentStatus
    revision: int = 0
    """The registry's revision (0 for file agents)."""
    tenant: str = FILE_AGENTS
    """The tenant owning a registered agent; :data:`FILE_AGENTS` for a file agent."""

    @property
    def key(self) -> StatusKey:
        """``(tenant, name)``: how the registry names this agent and its status."""
        return self.tenant, self.name


class AgentCatalog:
    """Resolves, builds, registers and removes agents for the channels."""

    def __init__(
        self, runtime: AgentRuntime, registry: AgentRegistry, *, policy: RegistrationPolicy
    ) -> None:
        self.runtime = runtime
        self.registry = registry
        self.policy = policy
        """What registered documents may use; checked on every parse (stored ones too, so a
        policy tightened on upgrade applies to agents registered before) and enforced at
        run time through :meth:`RegistrationPolicy.grants`."""
        # Both caches are per tenant and name, and checked against the registry's record on
        # every use: a parsed document is kept while its revision *and* text are the ones
        # stored (a deleted agent registered again starts over at revision 1), and a built
        # agent while it was built from that very document.
        self._documents: dict[StatusKey, tuple[int, str, AgentDocument]] = {}
        self._built: dict[StatusKey, tuple[AgentDocument, Agent]] = {}
        self._retired: list[Agent] = []
        self._build_lock = asyncio.Lock()

    # -- reading ---------------------------------------------------------------------------

    async def entries(self, *, tenant: str | None) -> list[CatalogEntry]:
        """The agents ``tenant`` sees, sorted by name: its registered agents, and the file
        agents it has not registered a namesake of. ``None`` (an admin's view): every
        tenant's registered agents and every file agent, sorted by name then tenant."""
        return (await self.listing(tenant=tenant))[0]

    async def listing(self, *, tenant: str | None) -> tuple[list[CatalogEntry], list[Draft]]:
        """:meth:`entries`, and the agents ``tenant`` sees that do not load (drafts: see
        :mod:`astromesh.channels.drafts`): file agents that fail to validate or build, and
        ``tenant``'s registered agents whose document no longer validates."""
        await self.runtime.check_agents()  # once: unrunnable file agents are left out
        statuses = await self.registry.statuses()
        found: dict[StatusKey, CatalogEntry] = {}
        drafts: list[Draft] = []
        for record in await self.registry.list(tenant=tenant):
            try:
                document = self._document(record)
            except ConfigurationError as exc:
                logger.warning(
                    "tenant=<%s>, agent=<%s> | registered agent skipped: %s",
                    record.tenant,
                    record.name,
                    exc,
                )
                drafts.append(Draft(record.name, exc.message, "registered", record.tenant))
                continue
            key = (record.tenant, record.name)
            found[key] = self._entry(record, document, statuses.get(key, AgentStatus.DEPLOYED))
        shadowed = {name for _, name in found} if tenant is not None else set()
        for name in self.runtime.agent_names():
            if name not in shadowed:
                status = statuses.get((FILE_AGENTS, name), AgentStatus.DEPLOYED)
                found[FILE_AGENTS, name] = CatalogEntry(
                    name, self.runtime.describe(name), "file", status
                )
        shown = {name for _, name in found}
        drafts += [d for d in file_drafts(self.runtime) if d.name not in shown]
        return (
            sorted(found.values(), key=lambda e: (e.name, e.tenant)),
            sorted(drafts, key=lambda d: (d.name, d.tenant)),
        )

    def skipped(self) -> dict[str, ConfigIssue]:
        """The file agents skipped because they cannot run here, by name, with where and why
        (known once :meth:`entries` has run, or a run of one was refused)."""
        return dict(sorted(self.runtime.skipped.items()))

    async def entry(self, name: str, *, tenant: str) -> CatalogEntry:
        """The agent ``name`` as ``tenant`` sees it.

        Raises:
            NotFoundError: neither ``tenant`` nor the agents folder has one (with the nearest
                name among the ones ``tenant`` sees).
            ConfigurationError: the registered document no longer validates here.
        """
        record, status = await self.registry.lookup(name, tenant=tenant)
        if record is not None:
            return self._entry(record, self._document(record), status)
        if name in self.runtime.config.agents:
            return CatalogEntry(name, self.runtime.describe(name), "file", status)
        raise NotFoundError(await self._unknown(name, tenant))

    async def agent(self, entry: CatalogEntry) -> Agent:
        """The built agent of ``entry`` (sessions are scoped by the run's ``tenant``).

        Raises:
            AgentUnrunnable: the agent validates but cannot be built here (409, naming why:
                a file agent skipped at load, or a registered agent that no longer builds,
                e.g. under a policy tightened since it was registered).
        """
        if entry.origin == "file":
            return await self.runtime.get(entry.name)
        cached = self._built.get(entry.key)
        if cached is None or cached[0] is not entry.document:
            async with self._build_lock:
                cached = self._built.get(entry.key)
                if cached is None or cached[0] is not entry.document:
                    try:
                        built = await self.runtime.build(
                            entry.document, grants=self.policy.grants()
                        )
                    except AgentUnrunnable:
                        raise
                    except ConfigurationError as exc:
                        raise AgentUnrunnable(
                            f"agent {entry.name!r} cannot run: {exc.message}; update it"
                            f" (PUT /v1/agents/{entry.name}) so that it can"
                        ) from None
                    self._retire(entry.key)
                    cached = self._built[entry.key] = (entry.document, built)
        return cached[1]

    # -- writing ---------------------------------------------------------------------------

    def parse(
        self,
        text: str,
        *,
        source: str = REQUEST_SOURCE,
        may_use_agent: Callable[[str], bool] | None = None,
    ) -> AgentDocument:
        """Validate posted text like a file, plus the registration policy.

        Args:
            may_use_agent: whether the registering key may use an agent by name (agents the
                document would call must pass it); ``None`` for documents already stored.

        A posted document must be valid text (``invalid_text``); one read back from the
        registry is repaired instead (its writer cannot be told, and its agent must still
        list and run): see :mod:`astromesh.text_boundary`.

        Raises:
            InvalidText: a posted document holds invalid text (field, line and column).
            InvalidAgent: with every issue (file, line, column, field, message).
        """
        posted = source == REQUEST_SOURCE
        if posted and (raw := document_issues(text)):
            raise InvalidText(raw)
        result = load_text(
            text,
            source=source,
            env={},
            known_providers=self.runtime.config.providers,
            repair_text=not posted,
        )
        text_issues = [i for i in result.errors if i.message.startswith(INVALID_TEXT)]
        if text_issues:
            raise InvalidText(
                [TextIssue(i.field, i.message, i.line, i.column) for i in text_issues]
            )
        if result.errors:
            raise InvalidAgent(
                f"the agent document is not valid: {result.errors[0]}", result.errors
            )
        others = len(result.provider_configs) + len(result.rag_pipelines) + bool(result.runtime)
        if others or len(result.agents) != 1:
            raise InvalidAgent(
                "expected exactly one document of kind Agent (ProviderConfig, RAGPipeline and"
                f" RuntimeConfig are read from the agents folder only); found {len(result.agents)}"
                f" agent(s) and {others} other document(s)",
                [],
            )
        [document] = result.agents.values()
        from astromesh.security.registration import registration_issues  # on a registration

        issues = registration_issues(
            document,
            text,
            source=source,
            policy=self.policy,
            providers=self.runtime.config.providers,
            may_use_agent=may_use_agent,
        )
        if issues:
            raise InvalidAgent(f"the agent cannot be registered: {issues[0]}", issues)
        return document

    async def register(
        self, text: str, *, tenant: str, may_use_agent: Callable[[str], bool] | None = None
    ) -> CatalogEntry:
        """Add a new agent of ``tenant`` from posted text.

        Raises:
            InvalidAgent: it does not validate, asks for more than the policy grants, or
                validates but cannot be built.
            ConflictError: the name is a file agent's, or ``tenant`` already registered it.
        """
        document = self.parse(text, may_use_agent=may_use_agent)
        name = document.name
        if name in self.runtime.config.agents:
            raise ConflictError(self._read_only(name))
        await self._check_buildable(document, text)
        record = await self.registry.create(name, text, tenant=tenant)
        return self._remember(record, document)

    async def update(
        self,
        name: str,
        text: str,
        *,
        tenant: str,
        may_use_agent: Callable[[str], bool] | None = None,
    ) -> CatalogEntry:
        """Replace ``tenant``'s agent's document (optimistic on the registry's revision)."""
        document = self.parse(text, may_use_agent=may_use_agent)
        if document.name != name:
            raise InvalidAgent(
                f"metadata.name is '{document.name}' but the URL names '{name}'",
                [ConfigIssue(REQUEST_SOURCE, None, None, "metadata.name", "must match the URL")],
            )
        current = await self.registry.get(name, tenant=tenant)
        if current is None:
            if name in self.runtime.config.agents:
                raise ConflictError(self._read_only(name))
            raise NotFoundError(await self._unknown(name, tenant))
        await self._check_buildable(document, text)
        record = await self.registry.update(name, text, tenant=tenant, revision=current.revision)
        return self._remember(record, document)

    async def remove(self, name: str, *, tenant: str) -> None:
        """Delete ``tenant``'s agent; file agents cannot be deleted."""
        if await self.registry.delete(name, tenant=tenant):
            self._documents.pop((tenant, name), None)
            self._retire((tenant, name))
            return
        if name in self.runtime.config.agents:
            raise ConflictError(self._read_only(name))
        raise NotFoundError(await self._unknown(name, tenant))

    async def set_status(self, entry: CatalogEntry, status: AgentStatus) -> CatalogEntry:
        """Pause or deploy ``entry``: a registered agent for its tenant only, a file agent for
        every tenant (callers check that only an admin does the latter)."""
        await self.registry.set_status(entry.name, status, tenant=entry.tenant)
        return dataclasses.replace(entry, status=status)

    async def aclose(self) -> None:
        """Close the providers of registered agents this catalog built."""
        for key in list(self._built):
            self._retire(key)
        retired, self._retired = self._retired, []
        for agent in retired:
            await agent.aclose()

    # -- helpers -----------------------------------------------------------------------------

    def _document(self, record: RegisteredAgent) -> AgentDocument:
        key = (record.tenant, record.name)
        cached = self._documents.get(key)
        if cached is not None and cached[:2] == (record.revision, record.source):
            return cached[2]
        try:
            document = self.parse(record.source, source=f"registry:{record.name}")
        except InvalidAgent as exc:
            raise AgentUnrunnable(
                f"registered agent {record.name!r} no longer validates: {exc.message}"
            ) from None
        self._documents[key] = (record.revision, record.source, document)
        return document

    def _remember(self, record: RegisteredAgent, document: AgentDocument) -> CatalogEntry:
        self._documents[record.tenant, record.name] = (record.revision, record.source, document)
        return self._entry(record, document, AgentStatus.DEPLOYED)

    @staticmethod
    def _entry(
        record: RegisteredAgent, document: AgentDocument, status: AgentStatus
    ) -> CatalogEntry:
        return CatalogEntry(
            record.name, document, "registered", status, record.revision, record.tenant
        )

    def _retire(self, key: StatusKey) -> None:
        """Forget a built agent; its providers close at shutdown, after runs using it end."""
        old = self._built.pop(key, None)
        if old is not None:
            self._retired.append(old[1])

    async def _check_buildable(self, document: AgentDocument, text: str) -> None:
        """Build the agent once, so a document that cannot run here is a 422 now.

        Building starts no process and opens no connection of the document's choosing (MCP
        servers connect on first use, routers join the health loop on their first call:
        see :mod:`astromesh.tools.registry`), so this runs nothing the caller named, even
        for a document that is refused.

        Raises:
            InvalidAgent: the document validates but cannot be built here.
        """
        try:
            agent = await self.runtime.build(document, grants=self.policy.grants())
        except ConfigurationError as exc:
            raise InvalidAgent(
                f"the agent validates but cannot be built here: {exc.message}",
                _build_issues(exc, text),
            ) from None
        await agent.aclose()

    async def _unknown(self, name: str, tenant: str) -> str:
        """Not found, with the nearest name ``tenant`` may see (never another tenant's)."""
        registered = await self.registry.list(tenant=tenant)
        known = sorted({*self.runtime.agent_names(), *(r.name for r in registered)})
        hint = get_close_matches(name, known, n=1)
        suffix = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"agent {name!r} not found{suffix} (known agents: {', '.join(known) or 'none'})"

    def _read_only(self, name: str) -> str:
        source = self.runtime.config.agents[name].source
        return (
            f"agent {name!r} is defined by the file {source.file if source else 'agents/'} and is"
            " read-only through the API; change the file, or register under another name"
        )


def _build_issues(exc: ConfigurationError, text: str) -> list[ConfigIssue]:
    """The issue of a build error that knows its field (a template over its limits), placed
    on the field's line in the posted text; none for errors that do not."""
    field = getattr(exc, "field", None)
    if not isinstance(field, str) or not field:
        return []
    path = tuple(int(part) if part.isdigit() else part for part in field.split("."))
    parsed = parse_documents(text, {})
    document = parsed[0] if isinstance(parsed, list) and parsed else None
    pos = document.position_of(path) if isinstance(document, YamlDocument) else None
    reason = getattr(exc, "reason", exc.message)
    return [
        ConfigIssue(
            REQUEST_SOURCE, pos.line if pos else None, pos.column if pos else None, field, reason
        )
    ]
