"""``spec.model``: which models an agent may call, per role, in which order.

Upstream has two spellings: ``primary`` (+ ``fallback`` one-or-list, + ``routing``) and the
role form ``default`` (+ ``roles``). Both are kept as written (so ``to_dict`` round-trips) and
read through one interface, ``candidates(role)`` / ``strategy(role)``, so the router never
needs to know which form a file used.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from astromesh.config.base import ConfigModel
from astromesh.config.constants import DEFAULT_STRATEGY, ENV_VAR_RE, ROUTING_STRATEGIES
from astromesh.config.issues import config_error

Strategy = Literal[
    "cost_optimized", "latency_optimized", "quality_first", "round_robin", "capability_match"
]
assert set(Strategy.__args__) == set(ROUTING_STRATEGIES)  # type: ignore[attr-defined]


class ModelParameters(ConfigModel):
    """Sampling parameters. The common ones are typed; provider-specific keys pass through
    (e.g. Ollama's ``num_ctx``), because each provider has its own knobs."""

    model_config = ConfigModel.model_config | {"extra": "allow"}

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: list[str] | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _one_or_many_stops(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ModelCandidate(ConfigModel):
    """One model to try. ``provider`` is a provider type or a ProviderConfig entry name."""

    provider: str = Field(validation_alias=AliasChoices("provider", "source"))
    model: str
    endpoint: str | None = None
    api_key_env: str | None = None
    parameters: ModelParameters = Field(default_factory=ModelParameters)
    timeout_seconds: float | None = Field(None, gt=0)

    _upstream_provider: str | None = PrivateAttr(default=None)

    @property
    def upstream_provider(self) -> str | None:
        """Upstream's provider name this candidate was written with (``openai``,
        ``litellm``) when the loader read it as ``openai_compat``; for messages."""
        return self._upstream_provider

    @upstream_provider.setter
    def upstream_provider(self, value: str | None) -> None:
        self._upstream_provider = value

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_VAR_RE.match(value):
            raise config_error(
                "api_key_env is the *name* of an environment variable holding the key"
                " (e.g. OPENAI_API_KEY), not the key itself"
            )
        return value


def _one_or_many(value: Any) -> Any:
    """``fallback: {...}`` and ``fallback: [{...}, ...]`` both mean a list."""
    return [value] if isinstance(value, dict) else value


class ModelRouting(ConfigModel):
    """``spec.model.routing`` of the primary form."""

    strategy: Strategy = DEFAULT_STRATEGY
    health_check_interval: int | None = Field(None, ge=0)
    """Health-check interval of every candidate of this agent, over its ProviderConfig
    entry's (see ``astromesh.models.health``); 0 turns the checks off."""


class RoleModels(ConfigModel):
    """One role of the role form: its ordered candidates and how to choose among them."""

    candidates: list[ModelCandidate] = Field(min_length=1)
    strategy: Strategy = DEFAULT_STRATEGY

    @field_validator("candidates", mode="before")
    @classmethod
    def _wrap(cls, value: Any) -> Any:
        return _one_or_many(value)


_PRIMARY_FORM = ("primary", "fallback", "routing")
_ROLE_FORM = ("default", "roles")


class ModelSpec(ConfigModel):
    """``spec.model`` in either form; use the methods, not the fields, to read it."""

    primary: ModelCandidate | None = None
    fallback: list[ModelCandidate] = Field(default_factory=list)
    routing: ModelRouting | None = None
    default: RoleModels | None = None
    # Stored as ``role_models`` because ``roles()`` is the method consumers call; the YAML
    # key and the serialized key are ``roles``.
    role_models: dict[str, RoleModels] = Field(default_factory=dict, validation_alias="roles")

    @field_validator("fallback", mode="before")
    @classmethod
    def _wrap(cls, value: Any) -> Any:
        return _one_or_many(value)

    @model_validator(mode="after")
    def _one_form(self) -> ModelSpec:
        given = {"roles" if k == "role_models" else k for k in self.model_fields_set}
        primary_keys = [k for k in _PRIMARY_FORM if k in given]
        role_keys = [k for k in _ROLE_FORM if k in given]
        if primary_keys and role_keys:
            raise config_error(
                f"mixes the primary form ({', '.join(primary_keys)}) with the role form"
                f" ({', '.join(role_keys)}); use either primary/fallback/routing or"
                " default/roles",
                field=role_keys[0],
            )
        if self.primary is None and self.default is None:
            if primary_keys:
                raise config_error("missing required field 'primary'", field="primary")
            if role_keys:
                raise config_error(
                    "missing required field 'default' (the candidates of roles not listed)",
                    field="default",
                )
            raise config_error(
                "no model given: write `primary: {provider, model}` (optionally with"
                " `fallback`) or `default: {candidates: [...]}` (optionally with `roles`)"
            )
        return self

    @property
    def uses_roles(self) -> bool:
        """True for the role form (``default``/``roles``)."""
        return self.primary is None

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Dump in the form the file used: ``roles`` by its YAML name, empty lists omitted
        (so a dumped role-form spec does not come back as a mixed one)."""
        data: dict[str, Any] = handler(self)
        roles = data.pop("role_models", None)
        if roles:
            data["roles"] = roles
        if not data.get("fallback"):
            data.pop("fallback", None)
        return data

    def roles(self) -> list[str]:
        """The role names this spec distinguishes; always starts with ``default``."""
        names = ["default"]
        if self.uses_roles:
            names += [name for name in self._role_map() if name != "default"]
        return names

    def candidates(self, role: str = "default") -> list[ModelCandidate]:
        """Ordered candidates for ``role``; unknown roles get the default's."""
        if self.primary is not None:
            return [self.primary, *self.fallback]
        return list(self._role(role).candidates)

    def strategy(self, role: str = "default") -> str:
        """The routing strategy for ``role`` (``cost_optimized`` unless configured)."""
        if self.primary is not None:
            return self.routing.strategy if self.routing is not None else DEFAULT_STRATEGY
        return self._role(role).strategy

    def all_candidates(self) -> list[tuple[tuple[str | int, ...], ModelCandidate]]:
        """Every candidate with its path under ``spec.model`` (for cross-document checks)."""
        found: list[tuple[tuple[str | int, ...], ModelCandidate]] = []
        if self.primary is not None:
            found.append((("primary",), self.primary))
        found += [(("fallback", i), c) for i, c in enumerate(self.fallback)]
        if self.default is not None:
            found += [
                (("default", "candidates", i), c) for i, c in enumerate(self.default.candidates)
            ]
        for name, role in self._role_map().items():
            found += [(("roles", name, "candidates", i), c) for i, c in enumerate(role.candidates)]
        return found

    def _role_map(self) -> dict[str, RoleModels]:
        return self.role_models

    def _role(self, role: str) -> RoleModels:
        chosen = self._role_map().get(role) or self.default
        assert chosen is not None  # guaranteed by _one_form
        return chosen
