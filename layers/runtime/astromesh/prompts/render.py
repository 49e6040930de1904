"""Prompt templates rendered in a bounded Jinja2 sandbox.

Agent files come from users and, through ``POST /v1/agents``, from API callers: the sandbox
keeps a template from reaching Python internals (``{{ ''.__class__.__mro__ }}`` fails) and,
through :mod:`astromesh.prompts.sandbox`, from using unbounded time or memory.
Templates are compiled and trial-rendered once when the agent is built, so a syntax error or a
template bomb surfaces at load (or registration) time rather than in every run.

Jinja2 and the sandbox are imported when a template is first compiled, not with this module
(docs/performance.md, "Lazy imports").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from astromesh.errors import ConfigurationError
from astromesh.prompts.limits import TemplateLimitError


class PromptTemplate:
    """One compiled template with the name it is reported under.

    ``field`` is where the template sits in its agent document (``spec.prompts.system``), so a
    refusal names the line of YAML to fix rather than an internal name.

    Raises:
        ConfigurationError: the template does not parse.
        TemplateLimitError: it is too long or nests too deeply to compile.
    """

    def __init__(self, name: str, source: str, *, field: str | None = None) -> None:
        self.name = name
        self.source = source
        self.field = field
        from jinja2 import TemplateSyntaxError

        from astromesh.prompts.sandbox import compile_template

        try:
            self._template = compile_template(source)
        except TemplateSyntaxError as exc:
            raise ConfigurationError(
                f"{self._where}: template syntax error on line {exc.lineno}: {exc.message}"
            ) from exc
        except TemplateLimitError as exc:
            raise self._limit(exc) from None

    @property
    def _where(self) -> str:
        return self.field or f"prompt {self.name!r}"

    def _limit(self, exc: TemplateLimitError) -> TemplateLimitError:
        if self.field:
            return exc.at(self.field)
        return TemplateLimitError(f"prompt {self.name!r}: {exc.reason}")

    def render(self, variables: Mapping[str, Any]) -> str:
        """The rendered text, stripped.

        Raises:
            TemplateLimitError: the render went over the sandbox's time or size budget.
            ConfigurationError: anything else the template raised.
        """
        from astromesh.prompts.sandbox import render_bounded

        try:
            return render_bounded(self._template, variables).strip()
        except TemplateLimitError as exc:
            raise self._limit(exc) from None
        except Exception as exc:
            raise ConfigurationError(f"{self._where}: cannot render: {exc}") from exc

    def check(self, variables: Mapping[str, Any] | None = None) -> None:
        """Render once with representative ``variables`` and refuse a template over budget.

        Only budget refusals count: representative variables cannot hold everything a run
        passes (``context`` comes from the caller), so an undefined name or a type error here
        may well render fine in a real run.

        Raises:
            TemplateLimitError: the trial render went over a limit.
        """
        try:
            self.render(sample_variables() if variables is None else variables)
        except TemplateLimitError:
            raise
        except ConfigurationError:
            pass


def base_variables(**extra: Any) -> dict[str, Any]:
    """Variables every template can use, plus the caller's."""
    now = datetime.now(UTC)
    return {"now": now.isoformat(timespec="seconds"), "today": now.date().isoformat(), **extra}


def sample_variables(**extra: Any) -> dict[str, Any]:
    """Stand-ins for every variable a system prompt or pipeline stage is rendered with, for a
    trial render when the real values (the agent, its tools, a run) are not at hand."""
    defaults = base_variables(
        agent={
            "name": "agent",
            "namespace": "default",
            "version": "0.1.0",
            "display_name": "Agent",
            "description": "An agent.",
        },
        context={},
        session_id="trial",
        tools=[],
        input="",
        query="",
        stages={},
    )
    return {**defaults, **extra}


def template_problem(source: str) -> str | None:
    """Why ``source`` cannot be a document's template, or ``None``: a syntax error, or a
    trial render (with :func:`sample_variables`) that goes over the sandbox's limits."""
    from jinja2 import TemplateSyntaxError

    try:
        PromptTemplate("template", source).check()
    except TemplateLimitError as exc:
        return exc.reason
    except ConfigurationError as exc:
        cause = exc.__cause__
        if isinstance(cause, TemplateSyntaxError):
            return f"invalid Jinja2 template: {cause.message} (line {cause.lineno} of the template)"
        return exc.message
    return None
