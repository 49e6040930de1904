"""Agents that exist but cannot load, listed as upstream lists them: ``status: draft``.

Upstream's ``GET /v1/agents`` shows an agent whose configuration fails to build as a
``draft`` with its ``error``, so a client sees that it is there and why it does not run. Here
three kinds of agent are drafts:

- a file agent that validates but cannot be built here (the runtime's ``skipped``);
- a file document of kind Agent that does not validate (its name read from the YAML);
- a registered agent whose stored document no longer validates (after a policy or schema
  change); only its own tenant (or an admin) lists it, like any registered agent.

The ``error`` is the problem without the server's file path (file agents are shared by every
tenant, their folder layout is the operator's); an admin still gets file and line under
``skipped``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astromesh.config import ConfigIssue
from astromesh.config.constants import NAME_RE
from astromesh.config.yaml_source import parse_documents
from astromesh.registry import FILE_AGENTS
from astromesh.runtime import AgentRuntime

DRAFT = "draft"


@dataclass(frozen=True, slots=True)
class Draft:
    """An agent listed but not runnable, and why."""

    name: str
    error: str
    origin: str
    tenant: str = FILE_AGENTS
    version: str = "0.1.0"
    namespace: str = "default"
    description: str | None = None
    pattern: str | None = None

    def summary(self) -> dict[str, Any]:
        """The item of ``GET /v1/agents``: upstream's draft fields plus ours."""
        return {
            "name": self.name,
            "version": self.version,
            "namespace": self.namespace,
            "description": self.description,
            "pattern": self.pattern,
            "display_name": None,
            "status": DRAFT,
            "error": self.error,
            "origin": self.origin,
            "tenant": self.tenant or None,
            "tools": [],
        }


def describe_issue(issue: ConfigIssue) -> str:
    """``issue`` without its file: ``line 12: spec.tools.0: message``."""
    where = f"line {issue.line}: " if issue.line is not None else ""
    field = f"{issue.field}: " if issue.field else ""
    return f"{where}{field}{issue.message}"


def file_drafts(runtime: AgentRuntime) -> list[Draft]:
    """The file agents that do not load: unrunnable ones, then invalid documents."""
    drafts: dict[str, Draft] = {}
    for name, issue in runtime.skipped.items():
        doc = runtime.config.agents.get(name)
        drafts[name] = Draft(
            name,
            describe_issue(issue),
            "file",
            version=doc.metadata.version if doc else "0.1.0",
            namespace=doc.metadata.namespace if doc else "default",
            description=(doc.description or None) if doc else None,
            pattern=doc.spec.orchestration.pattern if doc else None,
        )
    by_file: dict[str, list[ConfigIssue]] = {}
    for issue in runtime.issues:
        by_file.setdefault(issue.file, []).append(issue)
    for file, issues in by_file.items():
        for name, metadata, first in _agents_of(Path(file), issues):
            if name in drafts or name in runtime.config.agents:
                continue
            drafts[name] = Draft(
                name,
                describe_issue(first),
                "file",
                version=str(metadata.get("version", "0.1.0")),
                namespace=str(metadata.get("namespace", "default")),
                description=_text(metadata.get("description")),
            )
    return sorted(drafts.values(), key=lambda d: d.name)


def _agents_of(
    path: Path, issues: list[ConfigIssue]
) -> Iterable[tuple[str, dict[str, Any], ConfigIssue]]:
    """(name, metadata, first issue) of each Agent document of a file that failed to load.

    The first issue inside a document's lines is its error (a file with one bad document
    is skipped whole, so its other documents get the file's first issue)."""
    try:
        parsed = parse_documents(path.read_text(encoding="utf-8", errors="replace"), {})
    except OSError:
        return
    if not isinstance(parsed, list):
        return
    starts = [d.start.line for d in parsed] + [10**9]
    for i, ydoc in enumerate(parsed):
        data = ydoc.data
        if not isinstance(data, dict) or data.get("kind") != "Agent":
            continue
        metadata = data.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if not isinstance(name, str) or not NAME_RE.match(name):
            continue  # no usable name: listed nowhere but in the server's log
        inside = [
            issue
            for issue in issues
            if issue.line is not None and starts[i] <= issue.line < starts[i + 1]
        ]
        yield name, metadata, (inside or issues)[0]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
