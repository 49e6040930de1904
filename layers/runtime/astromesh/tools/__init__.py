"""Tools an agent can call: one interface, a registry with permissions, one file per type."""

from astromesh.tools.agent import AgentTool, ChildRunFailed
from astromesh.tools.base import Tool, ToolContext, ToolResult
from astromesh.tools.python import PythonTool, schema_from_signature
from astromesh.tools.registry import ToolRegistry, build_registry

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
