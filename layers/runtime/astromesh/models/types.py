"""The provider-neutral vocabulary of a model call: messages, tools, usage, stream events.

Every provider translates between these types and its wire format, so patterns, memory and
stores never see a provider's JSON.

Their text is always valid (:mod:`astromesh.text_boundary`): what a model produced (content,
tool names and arguments, streamed pieces) is repaired to U+FFFD as these types are built, so
a model answering a lone surrogate cannot fail the store that saves the run or the channel
that sends the answer. Nobody could be told: the model is not a caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from astromesh.text_boundary import Repaired, RepairedStr, dump_json, repair


class Role(StrEnum):
    """Who wrote a message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class ToolCall(BaseModel):
    """A model's request to run one tool with JSON arguments."""

    model_config = ConfigDict(frozen=True)

    id: RepairedStr
    name: RepairedStr
    arguments: Annotated[dict[str, Any], Repaired] = Field(default_factory=dict)


class Message(BaseModel):
    """One chat message; ``tool_calls`` on assistant messages, ``tool_call_id`` on tool results."""

    role: Role
    content: RepairedStr = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: RepairedStr | None = None
    content_ref: str | None = None
    """Set when ``content`` is only a preview of a large tool result kept in the run store
    under this call id; executors resolve it before the model sees the message, so the run
    document stays small however large the results."""

    def model_dump_json(self, **kwargs: Any) -> str:
        """JSON for the stores, repaired if a field was set to invalid text after validation
        (pydantic would refuse to encode it)."""
        return dump_json(self, super().model_dump_json, **kwargs)

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(role=Role.SYSTEM, content=content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls(role=Role.USER, content=content)

    @classmethod
    def assistant(cls, content: str, tool_calls: list[ToolCall] | None = None) -> Message:
        return cls(role=Role.ASSISTANT, content=content, tool_calls=tool_calls or [])

    @classmethod
    def tool(cls, content: str, *, tool_call_id: str, name: str) -> Message:
        return cls(role=Role.TOOL, content=content, tool_call_id=tool_call_id, name=name)


class ToolDefinition(BaseModel):
    """What a model is told about a tool: its name, purpose and JSON-Schema parameters."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class GenerationParams(BaseModel):
    """Sampling parameters; ``None`` means "the provider's default"."""

    model_config = ConfigDict(extra="allow")

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None

    def merged(self, override: GenerationParams | None) -> GenerationParams:
        """Return these parameters with every field set in ``override`` taking precedence."""
        if override is None:
            return self
        data = self.model_dump(exclude_none=True)
        data.update(override.model_dump(exclude_none=True))
        return GenerationParams(**data)


class Usage(BaseModel):
    """Tokens of one call. ``estimated`` is true when the backend reported none and we counted."""

    tokens_in: int = 0
    tokens_out: int = 0
    estimated: bool = False


class ModelResponse(BaseModel):
    """The complete result of one model call."""

    content: RepairedStr = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    provider: str
    model: str
    finish_reason: RepairedStr | None = None
    latency_ms: float = 0.0
    cost: float | None = None
    """US dollars, set by :class:`~astromesh.models.router.ModelRouter` from its price table;
    ``None`` when the call did not go through a router."""

    def as_message(self) -> Message:
        return Message.assistant(self.content, self.tool_calls)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of generated text, forwarded to the user as it arrives."""

    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", repair(self.text))  # frozen: set once, repaired


StreamEvent = TextDelta | ModelResponse
"""A provider's stream yields ``TextDelta`` pieces and ends with exactly one ``ModelResponse``."""
