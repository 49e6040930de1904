"""Upstream's provider names that are an OpenAI-compatible endpoint here.

Upstream calls ``openai`` with the OpenAI SDK and ``litellm`` with the LiteLLM library in
process. Both speak the OpenAI chat API over HTTP, so here they are ``openai_compat``
candidates: ``openai`` at the OpenAI API, ``litellm`` at a LiteLLM *proxy* (which serves the
same API for every model LiteLLM routes to). A ProviderConfig entry with the same name is
an operator's choice and wins: the loader only applies an alias to a name nothing defines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from astromesh.config.model_spec import ModelCandidate


@dataclass(frozen=True, slots=True)
class ProviderAlias:
    """What an upstream provider name means here."""

    endpoint: str
    endpoint_env: str | None
    api_key_env: str


PROVIDER_ALIASES: Final[dict[str, ProviderAlias]] = {
    "openai": ProviderAlias("https://api.openai.com/v1", None, "OPENAI_API_KEY"),
    "litellm": ProviderAlias("http://localhost:4000/v1", "LITELLM_API_BASE", "LITELLM_API_KEY"),
}


def apply_provider_alias(candidate: ModelCandidate, env: Mapping[str, str]) -> str | None:
    """Rewrite ``candidate`` in place when its provider is an upstream alias.

    Returns a warning when the rewrite guessed something the user should know (a LiteLLM
    proxy address that nothing configured), else ``None``.
    """
    alias = PROVIDER_ALIASES.get(candidate.provider)
    if alias is None:
        return None
    upstream = candidate.provider
    candidate.provider = "openai_compat"
    candidate.upstream_provider = upstream
    if candidate.endpoint:
        # An endpoint the document chose gets no server key it did not name.
        return None
    candidate.api_key_env = candidate.api_key_env or alias.api_key_env
    configured = env.get(alias.endpoint_env) if alias.endpoint_env else None
    candidate.endpoint = configured or alias.endpoint
    if upstream == "litellm" and not configured:
        return (
            "provider 'litellm': upstream calls the LiteLLM library in process; here it is a"
            " LiteLLM proxy (OpenAI-compatible) reached through openai_compat at"
            f" {alias.endpoint} (set `endpoint`, or ${alias.endpoint_env})"
        )
    return None
