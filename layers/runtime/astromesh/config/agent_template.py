"""``kind: AgentTemplate`` (upstream's ``config/templates/*.template.yaml``): an Agent with blanks.

A template carries an ``agent_config`` (an Agent document) whose strings hold placeholders
``{{key}}`` or ``{{key|filter}}`` (``slugify``, ``lower``, ``upper``) for the ``variables``
it declares. Rendering is upstream's (its Forge's ``resolveTemplate``): plain substitution of
declared keys, written without spaces, so an agent's own Jinja (``{{ agent.display_name }}``,
``{{ today }}``) passes through untouched and nothing is evaluated. The rendered Agent is then
validated like any other document; the loader trial-renders each template with sample values
so a template that cannot produce a valid agent is an error on its own file.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from astromesh.config.base import ConfigDocument, ConfigModel, Metadata
from astromesh.config.issues import config_error

_PLACEHOLDER = re.compile(r"\{\{(\w+)(?:\|(\w+))?\}\}")


def slugify(text: str) -> str:
    """Upstream's slug: lowercase, punctuation dropped, spaces and ``_`` as ``-``."""
    text = re.sub(r"[^\w\s-]", "", text.lower().strip())
    return re.sub(r"-+", "-", re.sub(r"[\s_]+", "-", text))


FILTERS: dict[str, Callable[[str], str]] = {
    "slugify": slugify,
    "lower": str.lower,
    "upper": str.upper,
}


class TemplateMetadata(Metadata):
    """A template's metadata: upstream adds a ``category`` and ``tags`` for catalogs."""

    category: str = ""
    tags: list[str] = Field(default_factory=list)


class TemplateVariable(ConfigModel):
    """One blank the user fills; ``default`` makes it optional."""

    key: str = Field(pattern=r"^\w+$")
    label: str = ""
    description: str | None = None
    placeholder: str | None = None
    default: str | None = None
    required: bool = False


class RecommendedChannel(ConfigModel):
    """Where upstream suggests deploying agents made from the template."""

    channel: str
    reason: str = ""


class TemplateBody(ConfigModel):
    """``template``: how the template is shown, its variables and the agent it renders."""

    display_name: str
    description: str = ""
    recommended_channels: list[RecommendedChannel] = Field(default_factory=list)
    variables: list[TemplateVariable] = Field(default_factory=list)
    agent_config: dict[str, Any]

    @field_validator("variables")
    @classmethod
    def _unique_keys(cls, variables: list[TemplateVariable]) -> list[TemplateVariable]:
        seen: set[str] = set()
        for i, variable in enumerate(variables):
            if variable.key in seen:
                raise config_error(f"duplicate variable key '{variable.key}'", field=f"{i}.key")
            seen.add(variable.key)
        return variables

    @field_validator("agent_config")
    @classmethod
    def _an_agent(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("kind") != "Agent":
            raise config_error("agent_config must be an Agent document (kind: Agent)")
        return value


class TemplateVariableError(ValueError):
    """The values given cannot fill the template: a required one is missing, or a key is
    not one of its variables."""


class AgentTemplateDocument(ConfigDocument):
    """``kind: AgentTemplate``."""

    kind: Literal["AgentTemplate"]
    metadata: TemplateMetadata
    template: TemplateBody

    def summary(self) -> dict[str, Any]:
        """An item of ``GET /v1/templates`` (upstream's fields)."""
        return {
            "name": self.metadata.name,
            "version": self.metadata.version,
            "category": self.metadata.category,
            "tags": list(self.metadata.tags),
            "display_name": self.template.display_name,
            "description": self.template.description,
            "recommended_channels": [c.model_dump() for c in self.template.recommended_channels],
        }

    def detail(self) -> dict[str, Any]:
        """``GET /v1/templates/{name}``: the summary plus variables and the agent config."""
        return {
            **self.summary(),
            "variables": [v.model_dump(exclude_none=True) for v in self.template.variables],
            "agent_config": copy.deepcopy(self.template.agent_config),
        }

    def values_for(self, given: Mapping[str, str]) -> dict[str, str]:
        """Every variable's value: ``given``, else its default, else (optional ones) its
        placeholder or empty.

        Raises:
            TemplateVariableError: a key is unknown, or a required variable (one without a
                default) is missing.
        """
        keys = [v.key for v in self.template.variables]
        unknown = sorted(set(given) - set(keys))
        if unknown:
            raise TemplateVariableError(
                f"template '{self.name}' has no variable {', '.join(map(repr, unknown))}"
                f" (its variables: {', '.join(keys) or 'none'})"
            )
        values: dict[str, str] = {}
        missing: list[str] = []
        for variable in self.template.variables:
            value = given.get(variable.key, variable.default)
            if variable.required and (value is None or not str(value).strip()):
                missing.append(variable.key)
                continue
            # An optional blank with no default takes its placeholder (upstream's example
            # value), else nothing.
            values[variable.key] = str(value if value is not None else variable.placeholder or "")
        if missing:
            raise TemplateVariableError(
                f"template '{self.name}' needs a value for {', '.join(map(repr, missing))}"
            )
        return values

    def sample_values(self) -> dict[str, str]:
        """Values to trial-render with: default, else placeholder, else a made-up word."""
        return {
            v.key: v.default or v.placeholder or f"example {v.key}" for v in self.template.variables
        }

    def render(self, given: Mapping[str, str]) -> dict[str, Any]:
        """The Agent document the template makes with ``given`` values (not yet validated).

        Raises:
            TemplateVariableError: see :meth:`values_for`.
        """
        return render_object(self.template.agent_config, self.values_for(given))


def render_object(value: Any, values: Mapping[str, str]) -> Any:
    """``value`` with every placeholder of a declared key replaced, at any depth."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: _fill(m, values), value)
    if isinstance(value, list):
        return [render_object(item, values) for item in value]
    if isinstance(value, dict):
        return {key: render_object(item, values) for key, item in value.items()}
    return value


def _fill(match: re.Match[str], values: Mapping[str, str]) -> str:
    key, name = match.group(1), match.group(2)
    if key not in values:
        return match.group(0)
    value = values[key]
    apply = FILTERS.get(name) if name else None
    return apply(value) if apply else value
