"""Tools an agent can call: one interface, a registry with permissions, one file per type."""

from astromesh.tools.base import Tool, ToolContext, ToolResult
from astromesh.tools.python import PythonTool, schema_from_signature
from astromesh.tools.registry import ToolRegistry, build_registry

__all__ = [
    "PythonTool",
    "Tool",
    "ToolContext",
    "ToolRegistry",
    "ToolResult",
    "build_registry",
    "schema_from_signature",
]
