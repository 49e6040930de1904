"""Prompt templates rendered in a Jinja2 sandbox.

Agent files come from users and, through ``POST /v1/agents``, from API callers: the sandbox
keeps a template from reaching Python internals (``{{ ''.__class__.__mro__ }}`` fails).
Templates are compiled once when the agent is built, so a syntax error surfaces at load time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from astromesh.errors import ConfigurationError

_ENV = SandboxedEnvironment(autoescape=False, keep_trailing_newline=False)


class PromptTemplate:
    """One compiled template with the name it is reported under."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        try:
            self._template = _ENV.from_string(source)
        except TemplateSyntaxError as exc:
            raise ConfigurationError(
                f"prompt {name!r}: template syntax error on line {exc.lineno}: {exc.message}"
            ) from exc

    def render(self, variables: Mapping[str, Any]) -> str:
        try:
            return self._template.render(**variables).strip()
        except Exception as exc:
            raise ConfigurationError(f"prompt {self.name!r}: cannot render: {exc}") from exc


def base_variables(**extra: Any) -> dict[str, Any]:
    """Variables every template can use, plus the caller's."""
    now = datetime.now(UTC)
    return {"now": now.isoformat(timespec="seconds"), "today": now.date().isoformat(), **extra}
