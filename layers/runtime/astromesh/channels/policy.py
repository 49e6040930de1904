"""What an agent registered through the API may not do, on top of validating like a file.

A file in the agents folder is written by the operator; a posted document comes from any
holder of an API key. Three fields would let such a caller reach past its agent:

- ``api_key_env`` names a server environment variable whose value the runtime sends as a
  bearer token to the candidate's endpoint: a posted agent could send any secret anywhere.
- ``endpoint`` on a provider defined by a ProviderConfig redirects that provider, and its
  key, to another host.
- a ``python`` tool's ``handler`` imports any function installed on the server
  (``subprocess:getoutput``), so only the configured modules are allowed.

(``${VAR}`` is already harmless: posted text is loaded with an empty environment.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from astromesh.config import AgentDocument, ConfigIssue, ProviderEntry
from astromesh.config.issues import format_path
from astromesh.config.yaml_source import FieldPath, YamlDocument, parse_documents


def registration_issues(
    doc: AgentDocument,
    text: str,
    *,
    source: str,
    providers: Mapping[str, ProviderEntry],
    tool_modules: Sequence[str],
) -> list[ConfigIssue]:
    """Problems that make ``doc`` unacceptable as a registered agent (empty when fine)."""
    parsed = parse_documents(text, {})
    ydoc = parsed[0] if isinstance(parsed, list) and parsed else None
    issues: list[ConfigIssue] = []

    def add(path: FieldPath, message: str) -> None:
        pos = ydoc.position_of(path) if isinstance(ydoc, YamlDocument) else None
        issues.append(
            ConfigIssue(
                source,
                pos.line if pos else None,
                pos.column if pos else None,
                format_path(path),
                message,
            )
        )

    for rel, candidate in doc.spec.model.all_candidates():
        path: FieldPath = ("spec", "model", *rel)
        if candidate.api_key_env is not None:
            add(
                (*path, "api_key_env"),
                "api_key_env is not allowed in an agent registered through the API (it would"
                " send a server secret to the endpoint); use a provider from a ProviderConfig",
            )
        entry = providers.get(candidate.provider)
        if entry is not None and candidate.endpoint and candidate.endpoint != entry.endpoint:
            add(
                (*path, "endpoint"),
                f"provider '{candidate.provider}' is defined by the server's ProviderConfig;"
                " a registered agent cannot point it at another endpoint",
            )
    for index, tool in enumerate(doc.spec.tools):
        module = getattr(tool, "module", None) if tool.type == "python" else None
        if module is not None and not _module_allowed(module, tool_modules):
            allowed = ", ".join(tool_modules) or "none configured"
            add(
                ("spec", "tools", index, "handler"),
                f"module '{module}' is not allowed for tools of registered agents"
                f" (allowed: {allowed}; set ASTROMESH_REGISTERED_TOOL_MODULES)",
            )
    return issues


def _module_allowed(module: str, allowed: Sequence[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allowed)
