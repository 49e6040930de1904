"""Load ``astromesh/v1`` documents from files, folders or text, collecting every problem.

Nothing here raises for a bad file: each problem becomes a ``ConfigIssue`` and the file's
documents are left out, so one broken agent never takes the others down (``astromesh
validate`` prints all issues at once; the runtime serves the agents that are fine).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from astromesh.config.agent import AgentDocument
from astromesh.config.base import ConfigDocument, SourceRef
from astromesh.config.compat import IGNORED_KINDS, apply_provider_alias, normalize
from astromesh.config.constants import (
    API_VERSIONS,
    IGNORED_FILE_NAMES,
    KINDS,
    PROVIDER_TYPES,
)
from astromesh.config.issues import ConfigIssue, format_path, one_of, suggest, with_suggestion
from astromesh.config.provider import ProviderConfigDocument, ProviderEntry, RoutingConfig
from astromesh.config.runtime_config import RuntimeConfigDocument
from astromesh.config.templates import document_templates
from astromesh.config.yaml_source import (
    FieldPath,
    ParseFailure,
    Position,
    YamlDocument,
    parse_documents,
)

if TYPE_CHECKING:
    from astromesh.config.agent_template import AgentTemplateDocument
    from astromesh.config.rag import RAGPipelineDocument
    from astromesh.config.workflow import WorkflowDocument

DOCUMENT_TYPES: dict[str, tuple[str, str]] = {
    "Agent": ("agent", "AgentDocument"),
    "ProviderConfig": ("provider", "ProviderConfigDocument"),
    "RAGPipeline": ("rag", "RAGPipelineDocument"),
    "RuntimeConfig": ("runtime_config", "RuntimeConfigDocument"),
    "AgentTemplate": ("agent_template", "AgentTemplateDocument"),
    "Workflow": ("workflow", "WorkflowDocument"),
}
"""Each kind's model, as ``(module of astromesh.config, class)``: a kind's module is imported
when a document of that kind is first validated, so a folder of agents does not load the
workflow, RAG and template models (docs/performance.md, "Lazy imports")."""
assert tuple(DOCUMENT_TYPES) == KINDS


def document_type(kind: str) -> type[ConfigDocument]:
    """The model of ``kind`` (one of :data:`KINDS`)."""
    module, name = DOCUMENT_TYPES[kind]
    model: type[ConfigDocument] = getattr(import_module(f"astromesh.config.{module}"), name)
    return model


YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadResult:
    """Everything one load found: typed documents by kind, and every problem."""

    agents: dict[str, AgentDocument] = field(default_factory=dict)
    provider_configs: list[ProviderConfigDocument] = field(default_factory=list)
    providers: dict[str, ProviderEntry] = field(default_factory=dict)
    routing: RoutingConfig | None = None
    rag_pipelines: dict[str, RAGPipelineDocument] = field(default_factory=dict)
    runtime: RuntimeConfigDocument | None = None
    templates: dict[str, AgentTemplateDocument] = field(default_factory=dict)
    workflows: dict[str, WorkflowDocument] = field(default_factory=dict)
    errors: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)
    """Upstream fields that load but mean nothing here (see :mod:`astromesh.config.compat`);
    ``astromesh validate --strict`` treats them as errors."""
    files: list[Path] = field(default_factory=list)
    _warnings_by_document: dict[tuple[str, int], list[ConfigIssue]] = field(
        default_factory=dict, repr=False
    )

    @property
    def ok(self) -> bool:
        """True when nothing was wrong."""
        return not self.errors

    def error_report(self) -> str:
        """All issues, one per line, as ``astromesh validate`` prints them."""
        return "\n".join(str(issue) for issue in self.errors)

    def warnings_of(self, source: SourceRef | None) -> list[ConfigIssue]:
        """The warnings of the document that starts at ``source`` (one agent's, say)."""
        if source is None:
            return []
        return list(self._warnings_by_document.get((source.file, source.line), []))

    def add_warnings(self, file: str, line: int, warnings: list[ConfigIssue]) -> None:
        """Record the warnings of the document of ``file`` that starts at ``line``."""
        self.warnings += warnings
        if warnings:
            self._warnings_by_document.setdefault((file, line), []).extend(warnings)


def load_path(
    path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    known_providers: Collection[str] = (),
) -> LoadResult:
    """Load one file, or every ``*.yaml``/``*.yml`` under a folder (recursively).

    Hidden files and folders and ``channels.yaml`` (not an astromesh/v1 document) are skipped
    in a folder. ``env`` replaces ``os.environ`` for ``${VAR}``; ``known_providers`` adds
    provider names defined elsewhere (e.g. already registered) to the cross-document check.
    """
    session = _Session(env, known_providers)
    root = Path(path)
    if root.is_dir():
        for file in _yaml_files(root):
            session.add_file(file)
    elif root.exists():
        session.add_file(root)
    else:
        session.issue(ConfigIssue(str(root), None, None, "", "no such file or directory"))
    return session.finish()


def load_files(files: Sequence[Path], *, env: Mapping[str, str] | None = None) -> LoadResult:
    """Load exactly ``files``, in this order, as one set of documents (references between
    them resolve, as in a folder)."""
    session = _Session(env, ())
    for file in files:
        session.add_file(file)
    return session.finish()


def yaml_files_beside(file: Path, served: Path | None = None) -> list[Path]:
    """``file``, then the documents it is checked together with: those of ``served`` (the
    folder a server would serve the file from, recursively, as it is loaded) or, without
    one, of the file's own folder (not below it, so checking ``~/draft.yaml`` never walks a
    home folder). A chain, an agent tool or a workflow step naming an agent defined in
    another file then resolves as it will when served. ``file`` comes first so that its
    documents win a clash (a name, the one RuntimeConfig) with a neighbour: a folder of
    alternatives, such as upstream's node profiles, holds one RuntimeConfig per file."""
    if served is not None:
        others = [f for f in _yaml_files(served) if f.resolve() != file.resolve()]
    else:
        others = sorted(
            entry
            for entry in file.parent.iterdir()
            if entry.is_file()
            and entry.name.endswith(YAML_SUFFIXES)
            and not entry.name.startswith(".")
            and entry.name not in IGNORED_FILE_NAMES
            and entry != file
        )
    return [file, *others]


def load_text(
    text: str,
    *,
    source: str = "<string>",
    env: Mapping[str, str] | None = None,
    known_providers: Collection[str] = (),
    known_agents: Collection[str] = (),
    repair_text: bool = False,
) -> LoadResult:
    """Load documents from text (e.g. a REST request body; JSON is valid YAML).

    For text from outside (REST), pass ``env={}`` or a restricted mapping: with the default,
    ``${VAR}`` would copy this process's environment (secrets included) into the agent.
    ``known_agents`` are agent names defined elsewhere (a tenant's registered agents) that a
    Workflow may name. ``repair_text`` repairs invalid text instead of reporting it
    (documents read back from a store, whose writer cannot be told; see
    :mod:`astromesh.text_boundary`).
    """
    session = _Session(env, known_providers, repair_text=repair_text, known_agents=known_agents)
    session.add_text(text, source)
    return session.finish()


def _yaml_files(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name in IGNORED_FILE_NAMES:
                continue
            if name.endswith(YAML_SUFFIXES):
                found.append(Path(dirpath) / name)
    return found


@dataclass
class _Staged:
    """A document that validated on its own, waiting for the cross-document checks."""

    document: ConfigDocument
    yaml: YamlDocument
    file: str


class _Session:
    """One load: per-file validation, then checks across all documents."""

    def __init__(
        self,
        env: Mapping[str, str] | None,
        known_providers: Collection[str],
        *,
        repair_text: bool = False,
        known_agents: Collection[str] = (),
    ) -> None:
        self._env = os.environ if env is None else env
        self._known_agents = set(known_agents)
        self._repair_text = repair_text
        self._known_providers = set(known_providers)
        self._staged: list[_Staged] = []
        self._provider_origin: dict[str, str] = {}
        self._routing_origin = ""
        self.result = LoadResult()

    def issue(self, issue: ConfigIssue) -> None:
        self.result.errors.append(issue)

    def add_file(self, path: Path) -> None:
        self.result.files.append(path)
        name = str(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            self.issue(ConfigIssue(name, None, None, "", f"cannot read file: {reason}"))
            return
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            before = raw[: exc.start]
            line = before.count(b"\n") + 1
            column = exc.start - (before.rfind(b"\n") + 1) + 1
            self.issue(
                ConfigIssue(
                    name,
                    line,
                    column,
                    "",
                    f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save it as UTF-8",
                )
            )
            return
        self.add_text(text, name)

    def add_text(self, text: str, file: str) -> None:
        parsed = parse_documents(text, self._env, repair_text=self._repair_text)
        if isinstance(parsed, ParseFailure):
            pos = parsed.position
            self.issue(
                ConfigIssue(
                    file,
                    pos.line if pos else None,
                    pos.column if pos else None,
                    format_path(parsed.path),
                    parsed.message,
                )
            )
            return
        if not parsed:
            self.issue(
                ConfigIssue(
                    file,
                    None,
                    None,
                    "",
                    "file is empty: expected an astromesh/v1 document"
                    " (apiVersion, kind, metadata, spec)",
                )
            )
            return
        staged: list[_Staged] = []
        issues: list[ConfigIssue] = []
        for ydoc in parsed:
            document, found, warned = _validate(ydoc, file)
            issues += found
            self.result.add_warnings(file, ydoc.start.line, warned)
            if document is not None:
                staged.append(_Staged(document, ydoc, file))
        if issues:
            # One bad document makes the whole file suspect: skip all of it.
            self.result.errors.extend(issues)
            return
        self._staged.extend(staged)

    # --- cross-document checks --------------------------------------------------------

    def finish(self) -> LoadResult:
        by_kind: dict[str, list[_Staged]] = {}
        for staged in self._staged:
            by_kind.setdefault(staged.document.kind, []).append(staged)
        for staged in by_kind.get("ProviderConfig", []):
            self._add_provider_config(staged)
        for staged in by_kind.get("RuntimeConfig", []):
            self._add_runtime(staged)
        for staged in by_kind.get("RAGPipeline", []):
            self._add_rag(staged)
        for staged in by_kind.get("Agent", []):
            self._add_agent(staged)
        for staged in by_kind.get("AgentTemplate", []):
            self._add_template(staged)
        for staged in by_kind.get("Workflow", []):
            self._add_workflow(staged)
        return self.result

    def _add_workflow(self, staged: _Staged) -> None:
        """Keep a workflow whose name is new and whose agents are in this load."""
        doc = staged.document
        assert isinstance(doc, document_type("Workflow"))
        ok = True
        for path, agent in doc.spec.agents():
            if agent not in self.result.agents and agent not in self._known_agents:
                ok = False
                hint = suggest(agent, [*self.result.agents, *sorted(self._known_agents)])
                self._at(
                    staged,
                    ("spec", *(int(p) if p.isdigit() else p for p in path.split("."))),
                    with_suggestion(f"unknown agent '{agent}'", hint)
                    + ("" if hint else " (no valid Agent document of that name was loaded)"),
                    suggestion=hint,
                )
        first = self.result.workflows.get(doc.name)
        if first is not None:
            self._at(
                staged,
                ("metadata", "name"),
                f"duplicate Workflow name '{doc.name}': already defined in {first.source}",
            )
            return
        if ok:
            self.result.workflows[doc.name] = doc

    def _add_template(self, staged: _Staged) -> None:
        """Keep a template whose trial render (sample values) is a valid Agent."""
        doc = staged.document
        assert isinstance(doc, document_type("AgentTemplate"))
        first = self.result.templates.get(doc.name)
        if first is not None:
            self._at(
                staged,
                ("metadata", "name"),
                f"duplicate AgentTemplate name '{doc.name}': already defined in {first.source}",
            )
            return
        rendered = normalize(doc.render(doc.sample_values()))
        base: FieldPath = ("template", "agent_config")
        if rendered.refusal is not None:
            self._at(staged, (*base, *rendered.refusal.path), rendered.refusal.message)
            return
        try:
            with document_templates():
                AgentDocument.model_validate(rendered.data)
        except ValidationError as exc:
            from astromesh.config.pydantic_errors import issues_from_validation_error

            for issue in issues_from_validation_error(
                exc, model=AgentDocument, document=None, file=staged.file, data=rendered.data
            ):
                path = tuple(int(p) if p.isdigit() else p for p in _split(issue.field))
                self._at(
                    staged,
                    (*base, *path),
                    f"the agent it renders (with sample values) is not valid: {issue.message}",
                )
            return
        self.result.templates[doc.name] = doc

    def _at(
        self,
        staged: _Staged,
        path: FieldPath,
        message: str,
        *,
        suggestion: str | None = None,
        prefer_key: bool = False,
    ) -> None:
        natural = _natural_path(staged.yaml.data, path)
        pos: Position = staged.yaml.position_of(natural, prefer_key=prefer_key)
        self.issue(
            ConfigIssue(
                staged.file, pos.line, pos.column, format_path(natural), message, suggestion
            )
        )

    def _add_provider_config(self, staged: _Staged) -> None:
        doc = staged.document
        assert isinstance(doc, ProviderConfigDocument)
        self.result.provider_configs.append(doc)
        for name, entry in doc.spec.providers.items():
            if name in self.result.providers:
                first = self._provider_origin[name]
                self._at(
                    staged,
                    ("spec", "providers", name),
                    f"provider '{name}' is already defined in {first}",
                    prefer_key=True,
                )
                continue
            self.result.providers[name] = entry
            self._provider_origin[name] = str(doc.source)
        if doc.spec.routing is not None:
            if self.result.routing is not None:
                self._at(
                    staged,
                    ("spec", "routing"),
                    f"routing is already set in {self._routing_origin}; keep one",
                    prefer_key=True,
                )
            else:
                self.result.routing = doc.spec.routing
                self._routing_origin = str(doc.source)

    def _add_runtime(self, staged: _Staged) -> None:
        doc = staged.document
        assert isinstance(doc, RuntimeConfigDocument)
        if self.result.runtime is not None:
            self._at(
                staged,
                ("kind",),
                f"only one RuntimeConfig is allowed; the first is in {self.result.runtime.source}",
            )
            return
        self.result.runtime = doc

    def _add_rag(self, staged: _Staged) -> None:
        doc = staged.document
        assert isinstance(doc, document_type("RAGPipeline"))
        first = self.result.rag_pipelines.get(doc.name)
        if first is not None:
            self._at(
                staged,
                ("metadata", "name"),
                f"duplicate RAGPipeline name '{doc.name}': already defined in {first.source}",
            )
            return
        self.result.rag_pipelines[doc.name] = doc

    def _add_agent(self, staged: _Staged) -> None:
        doc = staged.document
        assert isinstance(doc, AgentDocument)
        known = [*PROVIDER_TYPES, *self.result.providers, *sorted(self._known_providers)]
        ok = True
        for rel, candidate in doc.spec.model.all_candidates():
            if candidate.provider in known:
                continue
            note = apply_provider_alias(candidate, self._env)
            if note is not None:
                path = _natural_path(staged.yaml.data, ("spec", "model", *rel))
                pos = staged.yaml.position_of(path)
                warning = ConfigIssue(staged.file, pos.line, pos.column, format_path(path), note)
                self.result.add_warnings(staged.file, staged.yaml.start.line, [warning])
                doc.warnings.append(warning)
            if candidate.provider in known:
                continue
            ok = False
            path = _natural_path(staged.yaml.data, ("spec", "model", *rel))
            raw = _data_at(staged.yaml.data, path)
            key = "source" if isinstance(raw, dict) and "source" in raw else "provider"
            hint = suggest(candidate.provider, known)
            message = f"unknown provider '{candidate.provider}'"
            if hint is None:
                message += (
                    f": expected a provider type ({one_of(PROVIDER_TYPES)}) or the name of"
                    " a provider in a ProviderConfig"
                )
            self._at(staged, (*path, key), with_suggestion(message, hint), suggestion=hint)
        if not ok:
            return
        first = self.result.agents.get(doc.name)
        if first is not None:
            self._at(
                staged,
                ("metadata", "name"),
                f"duplicate agent name '{doc.name}': already defined in {first.source}",
            )
            return
        self.result.agents[doc.name] = doc


def _data_at(data: Any, path: FieldPath) -> Any:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _natural_path(data: Any, path: FieldPath) -> FieldPath:
    """``path`` as written in the file: a one-or-list field given one mapping has no index."""
    out: list[str | int] = []
    for part in path:
        if isinstance(part, int) and isinstance(data, dict):
            continue
        out.append(part)
        data = _data_at(data, (part,))
    return tuple(out)


def _envelope_issues(data: dict[str, Any], ydoc: YamlDocument, file: str) -> list[ConfigIssue]:
    """apiVersion/kind problems, phrased for the envelope, before choosing a model."""
    issues: list[ConfigIssue] = []

    def add(path: FieldPath, message: str, hint: str | None = None) -> None:
        pos = ydoc.position_of(path)
        issues.append(ConfigIssue(file, pos.line, pos.column, format_path(path), message, hint))

    version = data.get("apiVersion", data.get("api_version"))
    if version is None:
        add(("apiVersion",), f"missing required field 'apiVersion' (expected {API_VERSIONS[0]})")
    elif version not in API_VERSIONS:
        hint = suggest(str(version), API_VERSIONS)
        add(
            ("apiVersion",),
            with_suggestion(
                f"unsupported apiVersion '{version}'; expected {API_VERSIONS[0]}", hint
            ),
            hint,
        )
    kind = data.get("kind")
    if kind is None:
        add(("kind",), f"missing required field 'kind' (one of {', '.join(KINDS)})")
    elif kind not in KINDS:
        hint = suggest(str(kind), KINDS)
        add(
            ("kind",),
            with_suggestion(f"unknown kind '{kind}'; expected one of {', '.join(KINDS)}", hint),
            hint,
        )
    return issues


def _describe_scalar(value: Any) -> str:
    return "nothing (null)" if value is None else f"the value '{value}'"


def _issue_order(issue: ConfigIssue) -> tuple[int, int]:
    return (issue.line or 0, issue.column or 0)


def _validate(
    ydoc: YamlDocument, file: str
) -> tuple[ConfigDocument | None, list[ConfigIssue], list[ConfigIssue]]:
    """Validate one parsed document on its own: (document, errors, warnings)."""
    issues = [
        ConfigIssue(
            file,
            problem.position.line if problem.position else None,
            problem.position.column if problem.position else None,
            format_path(problem.path),
            problem.message,
        )
        for problem in ydoc.problems
    ]
    data = ydoc.data
    if not isinstance(data, dict):
        shape = "a list" if isinstance(data, list) else _describe_scalar(data)
        issues.append(
            ConfigIssue(
                file,
                ydoc.start.line,
                ydoc.start.column,
                "",
                f"expected a mapping with apiVersion, kind, metadata and spec, got {shape}",
            )
        )
        return None, issues, []

    def at(path: FieldPath, message: str) -> ConfigIssue:
        pos = ydoc.position_of(path, prefer_key=True)
        return ConfigIssue(file, pos.line, pos.column, format_path(path), message)

    ignored = IGNORED_KINDS.get(str(data.get("kind")))
    if ignored is not None and data.get("apiVersion", data.get("api_version")) in API_VERSIONS:
        return None, issues, [at(("kind",), f"document skipped: {ignored}")]
    envelope = _envelope_issues(data, ydoc, file)
    if envelope:
        return None, issues + envelope, []
    normalized = normalize(data)
    warnings = [at(note.path, note.message) for note in normalized.notes]
    if normalized.refusal is not None:
        issues.append(at(normalized.refusal.path, normalized.refusal.message))
        return None, issues, warnings
    data = normalized.data
    model = document_type(data["kind"])
    try:
        with document_templates():
            document = model.model_validate(data)
    except ValidationError as exc:
        # Wording pydantic's errors is for a document that fails: not imported for good ones.
        from astromesh.config.pydantic_errors import issues_from_validation_error

        issues += issues_from_validation_error(
            exc,
            model=model,
            document=ydoc,
            file=file,
            data=data,
            skip_paths=[problem.path for problem in ydoc.problems],
        )
        return None, sorted(issues, key=_issue_order), warnings
    document.with_source(SourceRef(file, ydoc.start.line))
    document.warnings.extend(warnings)
    return (None if issues else document), sorted(issues, key=_issue_order), warnings


def _split(field: str) -> list[str]:
    """``spec.tools[1].name`` -> ``["spec", "tools", "1", "name"]``."""
    return [part for part in re.split(r"[.\[\]\"]+", field) if part]
