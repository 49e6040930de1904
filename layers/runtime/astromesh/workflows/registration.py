"""Checking a workflow posted over the API (``POST /v1/workflows/register``).

A registered workflow is untrusted code, held to what its registering key could do itself:
it is validated like a file (every template trial-rendered in the sandbox, loops without a
pause refused), with ``${VAR}`` read from an empty environment; the agents it runs must be
ones the key's tenant sees and the key may use (another tenant's agent is as unknown as a
misspelt one); its tools must be builtins the registration policy grants to API callers,
and an approval's ``notify`` webhook is held to what a webhook tool of a posted agent may
reach and sign with.
Every refusal is an issue with the line and field of the posted document (rendered as
indented JSON, which is what the issues' line numbers count in).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

from astromesh.channels.errors import InvalidAgent
from astromesh.config import ConfigIssue, load_text
from astromesh.config.issues import format_path
from astromesh.config.workflow import WorkflowDocument
from astromesh.config.yaml_source import YamlDocument, parse_documents
from astromesh.security import RegistrationPolicy

SOURCE = "POST /v1/workflows/register: workflow"


class InvalidWorkflow(InvalidAgent):
    """A posted workflow did not validate or asks for more than the policy grants (422)."""

    code = "invalid_workflow"


def registered_workflow(
    document: dict[str, Any],
    *,
    known_agents: Collection[str],
    policy: RegistrationPolicy,
    may_use_agent: Callable[[str], bool],
) -> WorkflowDocument:
    """The posted workflow, validated and checked against the policy.

    Raises:
        InvalidWorkflow: with every issue (line, field, message).
    """
    text = json.dumps(document, indent=2, ensure_ascii=False)
    result = load_text(text, source=SOURCE, env={}, known_agents=known_agents)
    if result.errors:
        raise InvalidWorkflow(f"the workflow is not valid: {result.errors[0]}", result.errors)
    if len(result.workflows) != 1 or result.agents or result.provider_configs:
        raise InvalidWorkflow(
            "expected one document of kind Workflow in 'workflow' (agents go in 'agents')",
            [ConfigIssue(SOURCE, None, None, "kind", "must be Workflow")],
        )
    [workflow] = result.workflows.values()
    issues = _policy_issues(workflow, text, policy, may_use_agent)
    if issues:
        raise InvalidWorkflow(f"the workflow cannot be registered: {issues[0]}", issues)
    return workflow


def _policy_issues(
    workflow: WorkflowDocument,
    text: str,
    policy: RegistrationPolicy,
    may_use_agent: Callable[[str], bool],
) -> list[ConfigIssue]:
    from astromesh.channels.builtin_calls import builtin_refusal
    from astromesh.workflows.notify import notify_refusals

    parsed = parse_documents(text, {})
    ydoc = parsed[0] if isinstance(parsed, list) and parsed else None
    found: list[ConfigIssue] = []

    def add(path: str, message: str) -> None:
        parts = ("spec", *(int(p) if p.isdigit() else p for p in path.split(".")))
        pos = ydoc.position_of(parts) if isinstance(ydoc, YamlDocument) else None
        found.append(
            ConfigIssue(
                SOURCE,
                pos.line if pos else None,
                pos.column if pos else None,
                format_path(parts),
                message,
            )
        )

    for path, agent in workflow.spec.agents():
        if not may_use_agent(agent):
            add(path, f"agent '{agent}' is not one this API key may use (policy: the key's agents)")
    for path, tool in workflow.spec.tools():
        refusal = builtin_refusal(policy, tool)
        if refusal is not None:
            add(path, refusal)
    for path, notify in workflow.spec.notifications():
        for field, why in notify_refusals(notify, policy):
            add(f"{path}.{field}", why)
    return found
