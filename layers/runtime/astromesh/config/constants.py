"""The closed vocabularies of ``astromesh/v1`` documents, in one place.

Models use these for validation and the loader uses them for "did you mean" suggestions, so a
new provider type or builtin tool is added here once and every message picks it up.
"""

from __future__ import annotations

import re
from typing import Final

API_VERSION: Final = "astromesh/v1"
# Upstream's early files spell the group "astromech"; they are the same schema.
API_VERSIONS: Final[tuple[str, ...]] = (API_VERSION, "astromech/v1")

KIND_AGENT: Final = "Agent"
KIND_PROVIDER_CONFIG: Final = "ProviderConfig"
KIND_RAG_PIPELINE: Final = "RAGPipeline"
KIND_RUNTIME_CONFIG: Final = "RuntimeConfig"
KIND_AGENT_TEMPLATE: Final = "AgentTemplate"
KIND_WORKFLOW: Final = "Workflow"
KINDS: Final[tuple[str, ...]] = (
    KIND_AGENT,
    KIND_PROVIDER_CONFIG,
    KIND_RAG_PIPELINE,
    KIND_RUNTIME_CONFIG,
    KIND_AGENT_TEMPLATE,
    KIND_WORKFLOW,
)

# Provider *types* (wire protocols). A candidate may also name a provider defined in a
# ProviderConfig document; that cross-document check lives in the loader.
PROVIDER_TYPES: Final[tuple[str, ...]] = (
    "openai_compat",
    "vllm",
    "llamacpp",
    "ollama",
    "hf_tgi",
    "onnx",
)

ROUTING_STRATEGIES: Final[tuple[str, ...]] = (
    "cost_optimized",
    "latency_optimized",
    "quality_first",
    "round_robin",
    "capability_match",
)
DEFAULT_STRATEGY: Final = "cost_optimized"

PATTERNS: Final[tuple[str, ...]] = (
    "react",
    "plan_and_execute",
    "pipeline",
    "parallel_fan_out",
    "supervisor",
    "swarm",
)

BUILTIN_TOOLS: Final[tuple[str, ...]] = (
    "http_get",
    "json_transform",
    "text_summarize",
    "current_time",
    "calculator",
    "read_file",
    # upstream's builtins
    "datetime_now",
    "get_current_time",
    "http_request",
    "web_scrape",
    "send_webhook",
    "write_file",
    "sql_query",
    "send_slack",
    "send_email",
    "web_search",
    "wikipedia",
    "rag_query",
    "rag_ingest",
    "cache_store",
    "graphql_query",
)

TOOL_TYPES: Final[tuple[str, ...]] = (
    "builtin",
    "python",
    "mcp",
    "webhook",
    "rag",
    "agent",
    "client",
)

GUARDRAIL_TYPES: Final[tuple[str, ...]] = (
    "pii_detection",
    "max_length",
    "cost_limit",
    "content_filter",
    "topic_filter",
    "prompt_injection",
)

# metadata.name: used in URLs (/v1/agents/{name}), Step Functions execution names and keys.
NAME_RE: Final = re.compile(r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$")
# Tool names reach model APIs, which accept roughly this alphabet.
TOOL_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
ENV_VAR_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
PYTHON_HANDLER_RE: Final = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$")

# Files a directory load skips although they are YAML: the channels settings (docs/api.md) are not
# an astromesh/v1 document but may sit beside the agents.
IGNORED_FILE_NAMES: Final[frozenset[str]] = frozenset({"channels.yaml", "channels.yml"})
