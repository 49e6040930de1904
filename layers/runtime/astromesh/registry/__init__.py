"""Agents registered through the API, kept in the durable store so every instance agrees.

Files in the agents folder are the read-only defaults; this registry holds what callers add
with ``POST /v1/agents`` and the deployed/paused status of every agent.
"""

from astromesh.registry.base import AgentRegistry, AgentStatus, RegisteredAgent
from astromesh.registry.factory import registry_for

__all__ = ["AgentRegistry", "AgentStatus", "RegisteredAgent", "registry_for"]
