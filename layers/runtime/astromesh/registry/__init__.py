"""Agents registered through the API, kept in the durable store so every instance agrees.

Files in the agents folder are the read-only defaults shared by every tenant; this registry
holds what callers add with ``POST /v1/agents`` (each agent owned by the tenant of the key
that registered it) and the deployed/paused status of every agent.
"""

from astromesh.registry.base import (
    FILE_AGENTS,
    AgentRegistry,
    AgentStatus,
    RegisteredAgent,
    StatusKey,
)
from astromesh.registry.factory import registry_for

__all__ = [
    "FILE_AGENTS",
    "AgentRegistry",
    "AgentStatus",
    "RegisteredAgent",
    "StatusKey",
    "registry_for",
]
