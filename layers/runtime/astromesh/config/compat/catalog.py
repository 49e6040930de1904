"""The catalog of what upstream Astromesh documents and how this runtime treats each field.

Upstream (the self-hosted Astromesh 0.40) documents fields that mean nothing in a serverless
deployment (a node's services, its mesh peers) and spells some of ours differently. Failing
on them would make every upstream file a rewrite; accepting them silently would hide that they
do nothing. So each upstream field is listed here once with its treatment:

- ``honoured``: it works (a model field, or rewritten to ours by :mod:`.normalize`); no word.
- ``dropped``: removed before validation, with a warning naming it and saying why.
- ``inert``: kept in the document (it round-trips) but not enforced, with a warning.

A field that is neither ours nor in this catalog stays an error with "did you mean", so a
typo is never taken for an upstream field. ``astromesh validate`` prints the warnings and
exits 0; ``--strict`` makes them errors. The catalog is data, so ``docs/upstream-compat.md``
and the tests read the same list the loader applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Treatment = Literal["honoured", "dropped", "inert"]

ANY: Final = "*"
"""In a path: any key of a mapping or any item of a list."""


@dataclass(frozen=True, slots=True)
class UpstreamField:
    """One upstream field: where it is (``kind`` and a path under the document) and what
    this runtime does with it (``note`` is the warning's "why", or how it is honoured)."""

    kind: str
    path: tuple[str, ...]
    treatment: Treatment
    note: str

    @property
    def dotted(self) -> str:
        """The path as written in docs: ``spec.tools[*].permissions``."""
        out = ""
        for part in self.path:
            out += "[*]" if part == ANY else (f".{part}" if out else part)
        return out


_SERVERLESS = "this runtime has no nodes: each concern is its own Lambda function (or all of"
_NODE = f"{_SERVERLESS} them in `astromesh dev`)"

UPSTREAM_FIELDS: Final[tuple[UpstreamField, ...]] = (
    # --- RuntimeConfig: node profiles of upstream's self-hosted mesh --------------------
    UpstreamField(
        "RuntimeConfig",
        ("spec", "services"),
        "dropped",
        f"per-node service switches; {_NODE}, so every service is on",
    ),
    UpstreamField(
        "RuntimeConfig",
        ("spec", "peers"),
        "dropped",
        f"remote peer nodes; {_NODE}; agents call each other as child runs",
    ),
    UpstreamField(
        "RuntimeConfig",
        ("spec", "mesh"),
        "dropped",
        f"the gossip mesh between nodes; {_NODE}; scaling is Lambda's",
    ),
    UpstreamField(
        "RuntimeConfig",
        ("spec", "role"),
        "dropped",
        f"the node's role (gateway, worker, inference); {_NODE}",
    ),
    UpstreamField(
        "RuntimeConfig",
        ("spec", "api", "log_level"),
        "dropped",
        "the log level is the process's (its logging configuration; Lambda's"
        " POWERTOOLS_LOG_LEVEL), not a document's",
    ),
    UpstreamField(
        "RuntimeConfig",
        ("spec", "state", "backend"),
        "honoured",
        "`in_memory` is read as `memory`",
    ),
    # --- Agent ------------------------------------------------------------------------
    UpstreamField(
        "Agent",
        ("metadata", "description"),
        "honoured",
        "listed as the agent's description when `spec.identity.description` is empty",
    ),
    UpstreamField(
        "Agent",
        ("spec", "identity", "role"),
        "honoured",
        "available to prompts as `agent.role`",
    ),
    UpstreamField(
        "Agent",
        ("spec", "identity", "personality"),
        "honoured",
        "available to prompts as `agent.personality`",
    ),
    UpstreamField(
        "Agent",
        ("spec", "model", ANY, "temperature"),
        "honoured",
        "a flat `temperature` / `max_tokens` / `top_p` / `stop` under a model candidate (what"
        " upstream's `astromeshctl new agent` writes) is read as `parameters.<name>`",
    ),
    UpstreamField(
        "Agent",
        ("spec", "model", ANY, "provider"),
        "honoured",
        "`openai` is the OpenAI API through openai_compat (endpoint https://api.openai.com/v1,"
        " key in OPENAI_API_KEY); `litellm` is a LiteLLM proxy, which speaks the OpenAI API,"
        " through openai_compat (endpoint from the candidate, else $LITELLM_API_BASE, else"
        " http://localhost:4000/v1; key in LITELLM_API_KEY). A ProviderConfig entry of the same"
        " name wins",
    ),
    UpstreamField(
        "Agent",
        ("spec", "memory", ANY, "backend"),
        "honoured",
        "`in_memory` is read as `memory`",
    ),
    UpstreamField(
        "Agent",
        ("spec", "memory", "conversational", "max_messages"),
        "honoured",
        "read as `max_turns` (half as many turns, rounded up: a turn is a user message and"
        " its answer)",
    ),
    UpstreamField(
        "Agent",
        ("spec", "memory", "conversational", "connection"),
        "dropped",
        "a document does not choose its Redis server here: memory uses the runtime's store"
        " (RuntimeConfig spec.state.redis_url or $ASTROMESH_REDIS_URL, else"
        " redis://localhost:6379/0 as upstream)",
    ),
    UpstreamField(
        "Agent",
        ("spec", "tools", ANY, "permissions"),
        "dropped",
        "upstream's per-tool permission labels are not enforced; what a tool may reach is"
        " decided by spec.permissions (allowed_actions, filesystem, network, execution) and the"
        " server's policy",
    ),
    UpstreamField(
        "Agent",
        ("spec", "tools", ANY, "context_transform"),
        "honoured",
        "rendered with the call's arguments as `data` (bounded sandbox) into the child run's"
        " context; its keys are variables of the child's system prompt",
    ),
    UpstreamField(
        "Agent",
        ("spec", "tools", ANY, "rate_limit"),
        "dropped",
        "per-tool rate limits are not enforced here; bound a run with"
        " orchestration.max_iterations and a cost_limit guardrail",
    ),
    UpstreamField(
        "Agent",
        ("spec", "tools", ANY, "knowledge_base"),
        "honoured",
        "a `type: rag` tool's `knowledge_base` names its RAGPipeline (our `pipeline`); with"
        " neither, the folder's only RAGPipeline is used",
    ),
    UpstreamField(
        "Agent",
        ("spec", "guardrails", ANY, ANY, "categories"),
        "inert",
        "content categories need a moderation classifier this runtime does not ship; only"
        " forbidden_keywords and blocked_patterns are enforced",
    ),
    UpstreamField(
        "Agent",
        ("spec", "guardrails", ANY, ANY, "blocked_categories"),
        "inert",
        "content categories need a moderation classifier this runtime does not ship; only"
        " forbidden_keywords and blocked_patterns are enforced",
    ),
    UpstreamField(
        "Agent",
        ("spec", "guardrails", ANY, ANY, "allowed_topics"),
        "inert",
        "keeping a conversation on listed topics needs a topic classifier this runtime does"
        " not ship; only forbidden_topics (blocked_topics) is enforced",
    ),
    UpstreamField(
        "Agent",
        ("spec", "guardrails", ANY, ANY, "type"),
        "honoured",
        "`pii_redaction` (upstream's docs) is `pii_detection` with `action: redact`",
    ),
    UpstreamField(
        "Agent",
        ("spec", "model", ANY, "api_key_env"),
        "honoured",
        "an empty `api_key_env` (upstream's reference) means no key",
    ),
    UpstreamField(
        "Agent",
        ("spec", "tools", ANY, "config", "root"),
        "honoured",
        "a builtin `read_file` without `root` reads under the agents folder",
    ),
    UpstreamField(
        "Agent",
        ("spec", "memory", "conversational", "backend"),
        "honoured",
        "`redis` with no Redis configured uses redis://localhost:6379/0, as upstream",
    ),
    UpstreamField(
        "Agent",
        ("spec", "orchestration", "pattern"),
        "honoured",
        "`supervisor` without `workers` and `swarm` without `agents` take them from the"
        " agent's `type: agent` tools; `glyph` (upstream's Glyph language, `spec.program`) is"
        " refused",
    ),
    # --- Workflow ----------------------------------------------------------------------
    UpstreamField(
        "Workflow",
        ("spec", "observability"),
        "dropped",
        "upstream's per-workflow trace collector; a workflow's agent steps are traced as"
        " every run is (OpenTelemetry)",
    ),
    UpstreamField(
        "Workflow",
        ("spec", "steps", ANY, "context_transform"),
        "dropped",
        "upstream's per-step context template; an agent step's `input` is its whole input",
    ),
    UpstreamField(
        "Workflow",
        ("spec", "steps", ANY, "strict_conditions"),
        "dropped",
        "conditions are always strict here: a `when` reading an undefined name fails the"
        " step (its `on_error` applies) instead of rendering false",
    ),
)
"""Every upstream field the loader knows, in the order the docs list them."""

IGNORED_KINDS: Final[dict[str, str]] = {
    "OrbitDeployment": "it configures upstream's astromesh-orbit cloud installer; this"
    " project deploys with CDK (infra/)",
    "CentinelaBindings": "it configures upstream's Centinela add-on, which this runtime does"
    " not include",
}
"""Upstream kinds that belong to other upstream products: skipped with a warning."""

GLYPH_MESSAGE: Final = (
    "pattern 'glyph' runs upstream's Glyph language (spec.program), which this runtime does"
    " not implement; rewrite the agent with react, plan_and_execute, pipeline,"
    " parallel_fan_out, supervisor or swarm"
)


def fields_of(kind: str, treatment: Treatment) -> list[UpstreamField]:
    """The catalog entries of ``kind`` with ``treatment``."""
    return [f for f in UPSTREAM_FIELDS if f.kind == kind and f.treatment == treatment]


def upstream_keys_at(kind: str, parent: tuple[str | int, ...]) -> list[str]:
    """The upstream field names the catalog knows directly under ``parent`` (a concrete
    path) in a ``kind`` document: "did you mean" candidates for a misspelt upstream field."""
    found: list[str] = []
    for entry in UPSTREAM_FIELDS:
        prefix = entry.path[:-1]
        if (
            entry.kind == kind
            and len(prefix) == len(parent)
            and all(want in (ANY, got) for want, got in zip(prefix, parent, strict=True))
        ):
            found.append(entry.path[-1])
    return found
