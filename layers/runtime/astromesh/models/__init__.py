"""Model providers behind one interface, and the router that chooses among them."""

from astromesh.models.base import Model, ProviderSettings
from astromesh.models.registry import PROVIDER_TYPES, create_model
from astromesh.models.types import (
    GenerationParams,
    Message,
    ModelResponse,
    Role,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolDefinition,
    Usage,
)

__all__ = [
    "PROVIDER_TYPES",
    "GenerationParams",
    "Message",
    "Model",
    "ModelResponse",
    "ProviderSettings",
    "Role",
    "StreamEvent",
    "TextDelta",
    "ToolCall",
    "ToolDefinition",
    "Usage",
    "create_model",
]
