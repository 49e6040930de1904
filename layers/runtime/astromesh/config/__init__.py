"""``astromesh.config``: typed models of the ``astromesh/v1`` documents and their loader.

``load_path`` / ``load_text`` return a ``LoadResult`` with typed documents and a list of
``ConfigIssue`` (file, line, field path, plain message); they never raise for a bad file.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from astromesh.config.agent import AgentDocument, AgentSpec
    from astromesh.config.base import Metadata, SourceRef
    from astromesh.config.issues import ConfigIssue
    from astromesh.config.loader import LoadResult, load_path, load_text
    from astromesh.config.model_spec import ModelCandidate, ModelParameters, ModelSpec
    from astromesh.config.provider import ProviderConfigDocument, ProviderEntry, RoutingConfig
    from astromesh.config.rag import RAGPipelineDocument
    from astromesh.config.runtime_config import RuntimeConfigDocument
    from astromesh.config.tools import AnyTool, ToolConfig

_EXPORTS = {
    "AgentDocument": "astromesh.config.agent",
    "AgentSpec": "astromesh.config.agent",
    "AnyTool": "astromesh.config.tools",
    "ConfigIssue": "astromesh.config.issues",
    "LoadResult": "astromesh.config.loader",
    "Metadata": "astromesh.config.base",
    "ModelCandidate": "astromesh.config.model_spec",
    "ModelParameters": "astromesh.config.model_spec",
    "ModelSpec": "astromesh.config.model_spec",
    "ProviderConfigDocument": "astromesh.config.provider",
    "ProviderEntry": "astromesh.config.provider",
    "RAGPipelineDocument": "astromesh.config.rag",
    "RoutingConfig": "astromesh.config.provider",
    "RuntimeConfigDocument": "astromesh.config.runtime_config",
    "SourceRef": "astromesh.config.base",
    "ToolConfig": "astromesh.config.tools",
    "load_path": "astromesh.config.loader",
    "load_text": "astromesh.config.loader",
}
"""Where each name lives, imported on first use: a module that needs one of the documents'
models does not load every kind's (the loader imports a kind's model with its first document)."""

__all__ = [
    "AgentDocument",
    "AgentSpec",
    "AnyTool",
    "ConfigIssue",
    "LoadResult",
    "Metadata",
    "ModelCandidate",
    "ModelParameters",
    "ModelSpec",
    "ProviderConfigDocument",
    "ProviderEntry",
    "RAGPipelineDocument",
    "RoutingConfig",
    "RuntimeConfigDocument",
    "SourceRef",
    "ToolConfig",
    "load_path",
    "load_text",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
