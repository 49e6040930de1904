"""Tools an agent can call: one interface, a registry with permissions, one file per type.

The names below are imported on first use (the package's ``__getattr__``): importing one
module of the package (``tools.client`` for the REST schemas, ``tools.base`` for a type)
does not build the registry with every tool type and their HTTP clients
(docs/performance.md, "Lazy imports").
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from astromesh.tools.agent import AgentTool, ChildRunFailed
    from astromesh.tools.base import Tool, ToolContext, ToolResult
    from astromesh.tools.python import PythonTool, schema_from_signature
    from astromesh.tools.registry import ToolRegistry, build_registry

_EXPORTS = {
    "AgentTool": "agent",
    "ChildRunFailed": "agent",
    "PythonTool": "python",
    "Tool": "base",
    "ToolContext": "base",
    "ToolRegistry": "registry",
    "ToolResult": "base",
    "build_registry": "registry",
    "schema_from_signature": "python",
}

__all__ = [
    "AgentTool",
    "ChildRunFailed",
    "PythonTool",
    "Tool",
    "ToolContext",
    "ToolRegistry",
    "ToolResult",
    "build_registry",
    "schema_from_signature",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
