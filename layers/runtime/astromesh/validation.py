"""What ``astromesh validate PATH`` checks: the documents validate, and each valid agent builds.

A folder is checked as the runtime serves it. A single file is checked together with the
documents it will be served with, because that is how it will run: upstream's
``config/agents/sales-qualifier.agent.yaml`` chains ``email-composer``, defined in the next
file, and its ``config/workflows/example.workflow.yaml`` runs agents of ``config/agents/``;
checked alone, each would report a missing agent that is not missing. Those documents are the
served folder's (``--agents``; by default the agents folder when the file is inside it) or,
for a file outside one, its own folder's (not below). Only the
file's own problems are reported, and the file wins a clash with a neighbour (the same agent
name, a second RuntimeConfig: upstream's node profiles are one RuntimeConfig per file, each
an alternative); its neighbours are context, and a folder check reports theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from astromesh.config import ConfigIssue, LoadResult, load_path
from astromesh.config.loader import load_files, yaml_files_beside
from astromesh.runtime import AgentRuntime, default_agents_dir


@dataclass(slots=True)
class Validation:
    """The problems of one check and what it found valid."""

    errors: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)
    unrunnable: list[ConfigIssue] = field(default_factory=list)
    """Agents that validate but cannot be built here (a refused URL, a tool that does not
    import): errors too, reported apart so the counts can leave them out."""
    agents: int = 0
    providers: int = 0
    rag_pipelines: int = 0
    files: int = 0

    @property
    def problems(self) -> list[ConfigIssue]:
        return [*self.errors, *self.unrunnable]


async def validate_path(target: Path, served: Path | None = None) -> Validation:
    """Check ``target`` (a file or a folder); see the module docstring. ``served``: the
    folder a file is served from (``None``: the agents folder if it holds the file)."""
    if target.is_dir():
        result = load_path(target)
        async with AgentRuntime(target, offline=True) as runtime:
            unrunnable = list((await runtime.check_agents()).values())
        return Validation(
            errors=result.errors,
            warnings=result.warnings,
            unrunnable=unrunnable,
            agents=len(result.agents),
            providers=len(result.providers),
            rag_pipelines=len(result.rag_pipelines),
            files=len(result.files),
        )
    if served is None and target.resolve().is_relative_to(default_agents_dir().resolve()):
        served = default_agents_dir()
    result = load_files(yaml_files_beside(target, served))
    mine = _same_file(target)
    async with AgentRuntime(served or target.parent, offline=True, config=result) as runtime:
        skipped = await runtime.check_agents()
    own_agents = [
        name for name, doc in result.agents.items() if doc.source and mine(doc.source.file)
    ]
    return Validation(
        errors=[issue for issue in result.errors if mine(issue.file)],
        warnings=[issue for issue in result.warnings if mine(issue.file)],
        unrunnable=[skipped[name] for name in own_agents if name in skipped],
        agents=len(own_agents),
        providers=_count_own_providers(result, mine),
        rag_pipelines=sum(
            1 for doc in result.rag_pipelines.values() if doc.source and mine(doc.source.file)
        ),
        files=1,
    )


def _same_file(target: Path) -> Callable[[str], bool]:
    resolved = target.resolve()

    def mine(file: str) -> bool:
        try:
            return Path(file).resolve() == resolved
        except OSError:
            return False

    return mine


def _count_own_providers(result: LoadResult, mine: Callable[[str], bool]) -> int:
    return sum(
        len(doc.spec.providers)
        for doc in result.provider_configs
        if doc.source is not None and mine(doc.source.file)
    )
