"""ModelRouter: picks the candidate model for a role and falls back when one fails.

Candidates are tried in their declared order (primary, then each fallback). The next one is
tried only on retryable failures (connection, timeout, 429, 5xx) and only while no token has
reached the user: a stream that already spoke is not silently restarted on another model.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence

from astromesh.errors import ConfigurationError, ProviderError, ProviderUnavailable
from astromesh.models.base import Model
from astromesh.models.types import (
    GenerationParams,
    Message,
    StreamEvent,
    TextDelta,
    ToolDefinition,
)

logger = logging.getLogger(__name__)

DEFAULT_ROLE = "default"


class ModelRouter:
    """Candidate lists per role (``default``, ``planner``, ``worker``...)."""

    def __init__(self, candidates: Mapping[str, Sequence[Model]]) -> None:
        if not candidates.get(DEFAULT_ROLE):
            raise ConfigurationError("a model router needs at least one default candidate")
        self._candidates = {role: list(models) for role, models in candidates.items()}

    def candidates(self, role: str = DEFAULT_ROLE) -> list[Model]:
        return self._candidates.get(role) or self._candidates[DEFAULT_ROLE]

    def primary(self, role: str = DEFAULT_ROLE) -> Model:
        return self.candidates(role)[0]

    def models(self) -> list[Model]:
        """Every distinct model instance, for health checks and closing."""
        seen: dict[int, Model] = {}
        for models in self._candidates.values():
            for model in models:
                seen.setdefault(id(model), model)
        return list(seen.values())

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        role: str = DEFAULT_ROLE,
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Stream from the first candidate that answers.

        Raises:
            ProviderError: a non-retryable failure, or a failure after tokens were sent.
            ProviderUnavailable: every candidate failed with a retryable error.
        """
        failures: list[str] = []
        candidates = self.candidates(role)
        for model in candidates:
            spoke = False
            try:
                async for event in model.stream(messages, tools=tools, params=params):
                    spoke = spoke or isinstance(event, TextDelta)
                    yield event
                return
            except ProviderError as exc:
                if spoke or not exc.retryable:
                    raise
                logger.warning(
                    "provider=<%s> model=<%s> | falling back: %s",
                    exc.provider,
                    exc.model,
                    exc.message,
                )
                failures.append(exc.message)
        last = candidates[-1]
        raise ProviderUnavailable(
            "every candidate failed: " + " | ".join(failures),
            provider=last.settings.label,
            model=last.model,
            retryable=True,
        )

    async def aclose(self) -> None:
        for model in self.models():
            await model.aclose()
