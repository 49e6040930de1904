"""``text_summarize``: a summary of a text, written by the agent's own model.

The tool does not call a provider itself: it is given a :data:`Summariser`, an async
``(text, max_words) -> summary`` callable, when the registry is built. The runtime makes one
from the agent's router with :func:`router_summariser` (so the summary uses the agent's
model, routing, fallbacks and circuit breaker). Building this tool without a summariser is
a configuration error, reported when the agent is built.

``config.max_words`` (default 120) is the length asked for when the model gives none;
``config.max_input_chars`` (default 50,000) bounds what is sent to the model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import Field

from astromesh.errors import ToolError
from astromesh.models.types import GenerationParams, Message
from astromesh.runs.usage import count
from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin._common import BuiltinConfig

if TYPE_CHECKING:
    from astromesh.models.router import ModelRouter

Summariser = Callable[[str, int], Awaitable[str]]
"""``(text, max_words) -> summary``."""

SUMMARY_PROMPT = (
    "Summarise the user's text in at most {max_words} words. Keep names, numbers and dates "
    "exact. Answer with the summary only."
)


class SummarizeConfig(BuiltinConfig):
    max_words: int = Field(120, ge=5, le=2000)
    max_input_chars: int = Field(50_000, ge=100)


def router_summariser(router: ModelRouter, *, role: str = "default") -> Summariser:
    """A :data:`Summariser` that asks ``router`` (the agent's models) for the summary.

    The call is counted into the calling run's usage (role ``summary``) through
    :mod:`astromesh.runs.usage`: the tool itself never sees the run.
    """

    async def summarise(text: str, max_words: int) -> str:
        response = await router.complete(
            [Message.system(SUMMARY_PROMPT.format(max_words=max_words)), Message.user(text)],
            role=role,
            params=GenerationParams(max_tokens=max(64, max_words * 3)),
        )
        count(response)
        return response.content.strip()

    return summarise


class TextSummarizeTool(Tool):
    """Summarises text with the agent's model."""

    def __init__(
        self,
        summariser: Summariser,
        name: str = "text_summarize",
        description: str = "",
        *,
        config: SummarizeConfig | None = None,
    ) -> None:
        self.summariser = summariser
        self.config = config or SummarizeConfig()
        super().__init__(
            name=name,
            description=description or "Summarise a long text in a few sentences.",
            parameters={
                "type": "object",
                "properties": {
                    "text": {"type": "string", "description": "The text to summarise"},
                    "max_words": {"type": "integer", "minimum": 5, "maximum": 2000},
                },
                "required": ["text"],
                "additionalProperties": False,
            },
        )

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        text: str = arguments["text"]
        if not text.strip():
            raise ToolError("there is no text to summarise")
        if len(text) > self.config.max_input_chars:
            raise ToolError(
                f"text is {len(text)} characters; the limit is {self.config.max_input_chars}"
            )
        max_words = int(arguments.get("max_words") or self.config.max_words)
        return await self.summariser(text, max_words)
