"""The registration check: every capability a posted agent document names, against the policy.

Runs before anything is built, on the parsed document, and reports each refusal like any
other validation issue (file, line, column, field), with the policy rule that refused it, so
a 422 tells the caller exactly which line to change or which setting the operator would have
to widen. What a document can name, and what is asked of each:

- ``spec.model`` candidates: no ``api_key_env`` (it would send a server secret to the
  endpoint); a ProviderConfig provider keeps the operator's endpoint; any other HTTP provider
  only at a host of ``model_hosts`` (its default endpoint is the server's loopback); local
  model files (``llamacpp``, ``onnx``) only by the names of shipped models, never a path.
- ``spec.tools``: the type in ``tool_types``; builtins in ``builtins``; ``read_file`` and
  ``write_file`` roots inside ``file_roots`` and outside the forbidden folders (for writing,
  outside the agents folder too); ``python`` handlers from
  ``python_modules``; ``mcp`` never over stdio, over HTTP only under ``mcp_urls``; webhook
  URLs and the network builtins (:data:`NETWORK_BUILTINS`) through the SSRF guard (no
  private network unless the policy allows it, only ``network_hosts`` when set),
  ``secret_env`` only from ``secret_envs``.
- agents it would call (agent tools, pattern stages/targets/workers/members, chains): only
  agents the registering key may use.
- ``spec.permissions``: may narrow the policy, never widen it.

``${VAR}`` needs no rule: posted text is loaded with an empty environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from astromesh.config import AgentDocument, ConfigIssue, ProviderEntry
from astromesh.config.issues import format_path
from astromesh.config.yaml_source import FieldPath, YamlDocument, parse_documents
from astromesh.errors import AstromeshError
from astromesh.security.grants import url_under_prefix
from astromesh.security.policy import RegistrationPolicy, module_allowed
from astromesh.security.regex import re2_problem
from astromesh.security.schemas import schema_patterns, schema_refs

LOCAL_MODEL_PROVIDERS = frozenset({"llamacpp", "onnx"})
"""Provider types that load a model file in-process when they have no endpoint."""

_SETTING = "RuntimeConfig spec.registration"

NETWORK_BUILTINS = frozenset(
    {
        "http_get",
        "http_request",
        "web_scrape",
        "send_webhook",
        "send_slack",
        "web_search",
        "wikipedia",
        "graphql_query",
    }
)
"""Builtins that reach URLs through the SSRF guard and take ``allow_private_network``."""


class _Issues:
    """Collects issues with the line and column of their field in the posted text."""

    def __init__(self, text: str, source: str) -> None:
        parsed = parse_documents(text, {})
        self._doc = parsed[0] if isinstance(parsed, list) and parsed else None
        self.source = source
        self.found: list[ConfigIssue] = []

    def add(self, path: FieldPath, message: str, rule: str) -> None:
        pos = self._doc.position_of(path) if isinstance(self._doc, YamlDocument) else None
        self.found.append(
            ConfigIssue(
                self.source,
                pos.line if pos else None,
                pos.column if pos else None,
                format_path(path),
                f"{message} (policy: {rule})",
            )
        )


def registration_issues(
    doc: AgentDocument,
    text: str,
    *,
    source: str,
    policy: RegistrationPolicy,
    providers: Mapping[str, ProviderEntry],
    may_use_agent: Callable[[str], bool] | None = None,
) -> list[ConfigIssue]:
    """Everything in ``doc`` the policy does not grant (empty when it may be registered).

    Args:
        text: the posted text (for line numbers).
        may_use_agent: whether the registering key may use an agent by name; ``None``
            skips that check.
    """
    issues = _Issues(text, source)
    _check_patterns(doc, issues)
    _check_models(doc, policy, providers, issues)
    _check_limits(doc, policy, issues)
    _check_permissions(doc, policy, issues)
    for index, tool in enumerate(doc.spec.tools):
        _check_tool(index, tool, doc, policy, issues)
    if may_use_agent is not None:
        for path, name in called_agents(doc):
            if not may_use_agent(name):
                issues.add(
                    path,
                    f"agent '{name}' is not one this API key may use, so this agent may not"
                    " call it",
                    "the key's agent scope",
                )
    return issues.found


# -- regular expressions ---------------------------------------------------------------------


def _check_patterns(doc: AgentDocument, issues: _Issues) -> None:
    """Every regex the document names must run on RE2 (linear time); see
    :mod:`astromesh.security.regex` for why."""
    found: list[tuple[FieldPath, str]] = []
    for side in ("input", "output", "tool_results"):
        for i, rule in enumerate(getattr(doc.spec.guardrails, side)):
            for key in ("blocked_patterns", "extra_patterns"):
                for j, pattern in enumerate(getattr(rule, key, None) or ()):
                    found.append((("spec", "guardrails", side, i, key, j), pattern))
    schemas: list[tuple[FieldPath, Any]] = [
        (("spec", "tools", i, "parameters"), tool.parameters)
        for i, tool in enumerate(doc.spec.tools)
    ]
    if doc.spec.output_schema is not None:
        schemas.append((("spec", "output_schema"), doc.spec.output_schema))
    for base, schema in schemas:
        for sub, ref in schema_refs(schema):
            if not ref.startswith("#"):
                issues.add(
                    (*base, *sub),
                    f"$ref {ref!r} points outside the document; registered agents may only"
                    " use local references ('#/...')",
                    "never",
                )
        for sub, pattern in schema_patterns(schema):
            path: FieldPath = (*base, *sub)
            if "patternProperties" in sub:
                issues.add(
                    path[: path.index("patternProperties") + 1],
                    "patternProperties is not supported in registered agents (its regexes"
                    " would run on a backtracking engine); use properties",
                    "never",
                )
                continue
            found.append((path, pattern))
    for path, pattern in found:
        problem = re2_problem(pattern)
        if problem is not None:
            issues.add(
                path,
                f"regular expression {pattern!r} is not supported for registered agents"
                f" ({problem}): they run on RE2, in time linear in the text, which has no"
                " backreferences or lookarounds",
                "never",
            )


# -- models ----------------------------------------------------------------------------------


def _check_models(
    doc: AgentDocument,
    policy: RegistrationPolicy,
    providers: Mapping[str, ProviderEntry],
    issues: _Issues,
) -> None:
    for rel, candidate in doc.spec.model.all_candidates():
        path: FieldPath = ("spec", "model", *rel)
        if candidate.api_key_env is not None and candidate.upstream_provider is not None:
            issues.add(
                (*path, "provider"),
                f"provider '{candidate.upstream_provider}' calls with the server's"
                f" {candidate.api_key_env}, which a registered agent may not use; use a"
                " provider from a ProviderConfig",
                "never",
            )
        elif candidate.api_key_env is not None:
            issues.add(
                (*path, "api_key_env"),
                "api_key_env is not allowed in a registered agent (it would send a server"
                " secret to the endpoint); use a provider from a ProviderConfig",
                "never",
            )
        entry = providers.get(candidate.provider)
        if entry is not None:
            if candidate.endpoint and candidate.endpoint != entry.endpoint:
                issues.add(
                    (*path, "endpoint"),
                    f"provider '{candidate.provider}' is defined by the server's ProviderConfig;"
                    " a registered agent cannot point it at another endpoint",
                    "never",
                )
            continue
        kind = candidate.provider
        if kind in LOCAL_MODEL_PROVIDERS and not candidate.endpoint:
            if _looks_like_path(candidate.model):
                issues.add(
                    (*path, "model"),
                    f"'{candidate.model}' is a file path; a registered agent may only name"
                    " a shipped model (e.g. smollm2-135m-instruct, minilm-l6-v2)",
                    "never",
                )
            continue
        endpoint = candidate.endpoint or _default_endpoint(kind)
        if endpoint is None:
            continue
        refusal = _model_endpoint_refusal(endpoint, policy)
        if refusal is not None:
            field = "endpoint" if candidate.endpoint else "provider"
            issues.add((*path, field), refusal, f"{_SETTING}.model_hosts")


def _model_endpoint_refusal(endpoint: str, policy: RegistrationPolicy) -> str | None:
    from astromesh.tools.ssrf import SSRFGuard

    guard = SSRFGuard(allow_private_network=True, allowed_hosts=policy.model_hosts)
    try:
        guard.check_literal(endpoint)
    except AstromeshError as exc:
        return (
            f"model endpoint {endpoint} is not allowed for registered agents: {exc.message};"
            " use a provider from a ProviderConfig, or ask the operator to list the host"
        )
    return None


def _default_endpoint(provider_type: str) -> str | None:
    """Where a provider type calls when no endpoint is given (``None``: not an HTTP one)."""
    from astromesh.models.registry import PROVIDER_TYPES, provider_class

    if provider_type not in PROVIDER_TYPES:
        return None
    endpoint = getattr(provider_class(provider_type), "default_endpoint", None)
    return endpoint if isinstance(endpoint, str) else None


def _looks_like_path(model: str) -> bool:
    return any(mark in model for mark in ("/", "\\", "~", "$")) or model.lower().endswith(
        (".gguf", ".onnx", ".bin")
    )


# -- run limits ------------------------------------------------------------------------------


def _check_limits(doc: AgentDocument, policy: RegistrationPolicy, issues: _Issues) -> None:
    """How long and how much a registered agent may run on the operator's models."""
    orch = doc.spec.orchestration
    base: FieldPath = ("spec", "orchestration")
    checks: list[tuple[FieldPath, float | None, float, str]] = [
        ((*base, "max_iterations"), orch.max_iterations, policy.max_iterations, "max_iterations"),
        (
            (*base, "timeout_seconds"),
            orch.timeout_seconds,
            policy.max_timeout_seconds,
            "max_timeout_seconds",
        ),
        ((*base, "max_replans"), orch.max_replans, policy.max_replans, "max_replans"),
        ((*base, "max_handoffs"), orch.max_handoffs, policy.max_iterations, "max_iterations"),
    ]
    for rel, candidate in doc.spec.model.all_candidates():
        checks.append(
            (
                ("spec", "model", *rel, "parameters", "max_tokens"),
                candidate.parameters.max_tokens,
                policy.max_output_tokens,
                "max_output_tokens",
            )
        )
    for i, tool in enumerate(doc.spec.tools):
        if tool.type == "webhook":
            checks.append(
                (
                    ("spec", "tools", i, "timeout_seconds"),
                    tool.timeout_seconds,
                    policy.max_timeout_seconds,
                    "max_timeout_seconds",
                )
            )
    for path, value, limit, setting in checks:
        if value is not None and value > limit:
            issues.add(
                path,
                f"{value:g} is over the {limit:g} registered agents may ask for",
                f"{_SETTING}.{setting}",
            )


# -- tools -----------------------------------------------------------------------------------


def _check_tool(
    index: int, tool: Any, doc: AgentDocument, policy: RegistrationPolicy, issues: _Issues
) -> None:
    path: FieldPath = ("spec", "tools", index)
    if tool.type not in policy.tool_types:
        allowed = ", ".join(sorted(policy.tool_types)) or "none"
        issues.add(
            (*path, "type"),
            f"tools of type '{tool.type}' are not allowed for registered agents"
            f" (allowed: {allowed})",
            f"{_SETTING}.tool_types",
        )
        if tool.type != "mcp":
            return
    if tool.type == "builtin":
        _check_builtin(path, tool, doc, policy, issues)
    elif tool.type == "python":
        if not module_allowed(tool.module, policy.python_modules):
            allowed = ", ".join(policy.python_modules) or "none configured"
            issues.add(
                (*path, "handler"),
                f"module '{tool.module}' is not allowed for tools of registered agents"
                f" (allowed: {allowed})",
                f"{_SETTING}.python_modules / ASTROMESH_REGISTERED_TOOL_MODULES",
            )
    elif tool.type == "mcp":
        _check_mcp(path, tool, policy, issues)
    elif tool.type == "webhook":
        _check_webhook(path, tool, policy, issues)


def _check_builtin(
    path: FieldPath, tool: Any, doc: AgentDocument, policy: RegistrationPolicy, issues: _Issues
) -> None:
    if tool.name not in policy.builtins:
        allowed = ", ".join(sorted(policy.builtins)) or "none"
        issues.add(
            (*path, "name"),
            f"builtin '{tool.name}' is not allowed for registered agents (allowed: {allowed})",
            f"{_SETTING}.builtins",
        )
        return
    config = tool.config if isinstance(tool.config, dict) else {}
    if tool.name in ("read_file", "write_file"):
        grants = policy.grants().narrowed(doc.spec.permissions, base=policy.base)
        refusal = grants.root_refusal if tool.name == "read_file" else grants.write_root_refusal
        for key in ("root", "allowed_paths"):  # ours, upstream's
            roots = config.get(key)
            for i, root in enumerate(roots if isinstance(roots, list) else [roots]):
                if not isinstance(root, str):
                    continue  # the builder reports a missing or malformed root
                problem = refusal(_resolve(root, policy.base))
                if problem is not None:
                    at = (*path, "config", key) if key == "root" else (*path, "config", key, i)
                    issues.add(at, problem, f"{_SETTING}.file_roots")
    elif tool.name == "send_email":
        for key in ("smtp_host", "smtp_port"):
            if key in config:
                issues.add(
                    (*path, "config", key),
                    "a registered agent sends email only through the operator's SMTP server"
                    " (SMTP_HOST in the environment, shared through secret_envs)",
                    "never",
                )
    elif tool.name == "sql_query":
        key = "dsn" if "dsn" in config else "connection_string"
        dsn = config.get(key)
        if isinstance(dsn, str) and dsn not in policy.sql_dsns:
            issues.add(
                (*path, "config", key),
                "this database is not one registered agents may query",
                f"{_SETTING}.sql_dsns",
            )
    for key in ("webhook_url", "endpoint"):  # send_slack's; web_search's and wikipedia's
        if tool.name in NETWORK_BUILTINS and isinstance(config.get(key), str):
            _check_url((*path, "config", key), config[key], policy, issues)
    if tool.name in NETWORK_BUILTINS and not policy.allow_private_network:
        for key in ("allow_private_network", "allow_localhost"):  # ours, upstream's
            if config.get(key) is True:
                issues.add(
                    (*path, "config", key),
                    "registered agents may not reach private networks",
                    f"{_SETTING}.allow_private_network",
                )


def _check_url(path: FieldPath, url: str, policy: RegistrationPolicy, issues: _Issues) -> None:
    """A URL a registered document names, through the SSRF guard's literal check."""
    from astromesh.tools.ssrf import SSRFGuard

    guard = SSRFGuard(
        allow_private_network=policy.allow_private_network, allowed_hosts=policy.network_hosts
    )
    try:
        guard.check_literal(url)
    except AstromeshError as exc:
        issues.add(path, exc.message, f"{_SETTING}.network_hosts / SSRF guard")
    except Exception:  # noqa: BLE001 - an unparsable URL
        issues.add(path, f"{url!r} is not a valid URL", "SSRF guard")


def _check_mcp(path: FieldPath, tool: Any, policy: RegistrationPolicy, issues: _Issues) -> None:
    if tool.transport == "stdio":
        issues.add(
            (*path, "transport"),
            "an MCP server over stdio would run a command on the server; registered agents"
            " may only use MCP over streamable HTTP (put stdio servers in an agent file)",
            "never",
        )
        return
    url = tool.url or ""
    if not any(url_under_prefix(url, prefix) for prefix in policy.mcp_urls):
        allowed = ", ".join(policy.mcp_urls) or "none"
        issues.add(
            (*path, "url"),
            f"MCP server {url} is not one registered agents may use (allowed: {allowed})",
            f"{_SETTING}.mcp_urls",
        )


def _check_webhook(path: FieldPath, tool: Any, policy: RegistrationPolicy, issues: _Issues) -> None:
    if tool.allow_private_network and not policy.allow_private_network:
        issues.add(
            (*path, "allow_private_network"),
            "registered agents may not reach private networks",
            f"{_SETTING}.allow_private_network",
        )
    guard = policy.grants().tool_guard(allow_private_network=tool.allow_private_network)
    try:
        guard.check_literal(tool.url)
    except AstromeshError as exc:
        issues.add((*path, "url"), exc.message, f"{_SETTING}.network_hosts / SSRF guard")
    if tool.secret_env is not None and tool.secret_env not in policy.secret_envs:
        issues.add(
            (*path, "secret_env"),
            f"secret_env '{tool.secret_env}' would sign requests with a server secret; only"
            f" {', '.join(sorted(policy.secret_envs)) or 'none'} may be used",
            f"{_SETTING}.secret_envs",
        )


# -- permissions and called agents ------------------------------------------------------------


def _check_permissions(doc: AgentDocument, policy: RegistrationPolicy, issues: _Issues) -> None:
    permissions = doc.spec.permissions
    base: FieldPath = ("spec", "permissions")
    grants = policy.grants()
    if permissions.network is not None:
        for i, host in enumerate(permissions.network.allowed):
            if not grants.covers_host(host):
                issues.add(
                    (*base, "network", "allowed", i),
                    f"'{host}' is outside the hosts registered agents may reach; permissions"
                    " can only narrow the policy",
                    f"{_SETTING}.network_hosts",
                )
    if permissions.filesystem is not None:
        for key in ("read", "write"):
            for i, root in enumerate(getattr(permissions.filesystem, key)):
                problem = grants.root_refusal(_resolve(root, policy.base))
                if problem is not None:
                    issues.add((*base, "filesystem", key, i), problem, f"{_SETTING}.file_roots")
    if permissions.execution is not None and permissions.execution.tool_types is not None:
        for i, kind in enumerate(permissions.execution.tool_types):
            if kind not in policy.tool_types:
                issues.add(
                    (*base, "execution", "tool_types", i),
                    f"tool type '{kind}' is not granted to registered agents; permissions can"
                    " only narrow the policy",
                    f"{_SETTING}.tool_types",
                )


def called_agents(doc: AgentDocument) -> list[tuple[FieldPath, str]]:
    """``(field path, agent name)`` of every agent ``doc`` would run or talk to."""
    spec = doc.spec
    found: list[tuple[FieldPath, str]] = [
        (("spec", "tools", i, "agent"), tool.agent)
        for i, tool in enumerate(spec.tools)
        if tool.type == "agent"
    ]
    orch = spec.orchestration
    for i, stage in enumerate(orch.stages or []):
        if stage.agent is not None:
            found.append((("spec", "orchestration", "stages", i, "agent"), stage.agent))
    for i, target in enumerate(orch.targets or []):
        if target.agent is not None:
            found.append((("spec", "orchestration", "targets", i, "agent"), target.agent))
    for key in ("workers", "agents"):
        for i, name in enumerate(getattr(orch, key, None) or []):
            found.append((("spec", "orchestration", key, i), name))
    if spec.chain is not None:
        for i, step in enumerate(spec.chain.on_complete):
            found.append((("spec", "chain", "on_complete", i, "agent"), step.agent))
            if step.on_error not in ("stop", "continue"):  # an agent to run instead
                found.append((("spec", "chain", "on_complete", i, "on_error"), step.on_error))
    return found


def _resolve(root: str, base: Path) -> Path:
    path = Path(root).expanduser()
    return (path if path.is_absolute() else base / path).resolve()
