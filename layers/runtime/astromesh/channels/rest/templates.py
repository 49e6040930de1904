"""Agent templates (upstream's ``kind: AgentTemplate``): list, describe, render.

``GET /v1/templates`` answers upstream's bare list (its clients read a list), with and
without the trailing slash upstream's client sends; ``GET /v1/templates/{name}`` adds the
variables and the agent config. ``POST /v1/templates/{name}/render`` (ours) fills the blanks
and returns the Agent document, validated but not registered: registering it is a ``POST
/v1/agents`` like any other document, under the registration policy.
"""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter
from pydantic import BaseModel, Field

from astromesh.channels.errors import InvalidAgent
from astromesh.channels.openapi import AGENT, AUTHENTICATED, WITH_BODY, errors
from astromesh.channels.schemas import document_warnings
from astromesh.channels.security import CurrentPrincipal, ServicesDep
from astromesh.config import load_text
from astromesh.config.agent_template import AgentTemplateDocument, TemplateVariableError
from astromesh.errors import AstromeshError, NotFoundError

router = APIRouter(tags=["templates"])


class InvalidTemplateVariables(AstromeshError):
    """The values given for a template's variables cannot fill it."""

    code = "invalid_template_variables"
    status = 422


class RenderRequest(BaseModel):
    variables: dict[str, str] = Field(
        default_factory=dict, description="A value for each variable (defaults fill the rest)"
    )


def _template(services: ServicesDep, name: str) -> AgentTemplateDocument:
    templates = services.runtime.config.templates
    found = templates.get(name)
    if found is None:
        known = ", ".join(sorted(templates)) or "none"
        raise NotFoundError(f"template {name!r} not found (known templates: {known})")
    return found


@router.get("/v1/templates", responses=errors(AUTHENTICATED))
@router.get("/v1/templates/", include_in_schema=False)
async def list_templates(
    principal: CurrentPrincipal, services: ServicesDep
) -> list[dict[str, Any]]:
    """Every template of the agents folder, by name (upstream's list, not an object)."""
    templates = services.runtime.config.templates
    return [templates[name].summary() for name in sorted(templates)]


@router.get("/v1/templates/{name}", responses=errors(AUTHENTICATED, AGENT))
async def describe_template(
    name: str, principal: CurrentPrincipal, services: ServicesDep
) -> dict[str, Any]:
    """The template with its variables and the agent config it renders."""
    return _template(services, name).detail()


@router.post("/v1/templates/{name}/render", responses=errors(AUTHENTICATED, WITH_BODY, AGENT))
async def render_template(
    name: str, body: RenderRequest, principal: CurrentPrincipal, services: ServicesDep
) -> dict[str, Any]:
    """The Agent document the template makes with ``variables``, validated (422 with each
    issue when the values make an invalid agent), with its upstream-field warnings."""
    template = _template(services, name)
    try:
        rendered = template.render(body.variables)
    except TemplateVariableError as exc:
        raise InvalidTemplateVariables(str(exc)) from None
    result = load_text(
        yaml.safe_dump(rendered, sort_keys=False, allow_unicode=True),
        source=f"<template {name}>",
        env={},
        known_providers=services.runtime.config.providers,
    )
    if result.errors:
        raise InvalidAgent(
            f"the agent the template renders is not valid: {result.errors[0]}", result.errors
        )
    return {
        "agent": rendered,
        "warnings": [w.model_dump() for w in document_warnings(result.warnings)],
    }
