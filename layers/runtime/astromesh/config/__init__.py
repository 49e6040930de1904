"""``astromesh.config``: typed models of the ``astromesh/v1`` documents and their loader.

``load_path`` / ``load_text`` return a ``LoadResult`` with typed documents and a list of
``ConfigIssue`` (file, line, field path, plain message); they never raise for a bad file.
"""

from astromesh.config.agent import AgentDocument, AgentSpec
from astromesh.config.base import Metadata, SourceRef
from astromesh.config.issues import ConfigIssue
from astromesh.config.loader import LoadResult, load_path, load_text
from astromesh.config.model_spec import ModelCandidate, ModelParameters, ModelSpec
from astromesh.config.provider import ProviderConfigDocument, ProviderEntry, RoutingConfig
from astromesh.config.rag import RAGPipelineDocument
from astromesh.config.runtime_config import RuntimeConfigDocument
from astromesh.config.tools import AnyTool, ToolConfig

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
