"""Astromesh: an agent runtime platform.

Agents are declared in YAML (``astromesh/v1``), loaded by :class:`~astromesh.runtime.AgentRuntime`
and run through one step protocol, in-process or on AWS Step Functions.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
