"""The ``RuntimeConfig`` document: settings of the runtime itself (at most one per load)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from astromesh.config.base import ConfigDocument, ConfigModel
from astromesh.config.constants import BUILTIN_TOOLS, TOOL_TYPES
from astromesh.config.issues import config_error, one_of
from astromesh.config.orchestration import OrchestrationDefaults


class ApiSettings(ConfigModel):
    """Where the local server listens."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)


class RuntimeDefaults(ConfigModel):
    """Values for agents that leave them out."""

    orchestration: OrchestrationDefaults = Field(default_factory=OrchestrationDefaults)


class StateSettings(ConfigModel):
    """Where run state lives; the backend's own setting must be given."""

    backend: Literal["sqlite", "redis", "postgres", "memory"] = "sqlite"
    sqlite_path: str = ".astromesh/state.db"
    redis_url: str | None = None
    postgres_dsn: str | None = None

    @model_validator(mode="after")
    def _backend_settings(self) -> StateSettings:
        needed = {"redis": "redis_url", "postgres": "postgres_dsn"}.get(self.backend)
        if needed is not None and not getattr(self, needed):
            raise config_error(f"backend '{self.backend}' needs '{needed}'", field=needed)
        return self


DEFAULT_REGISTERED_TOOL_TYPES: tuple[str, ...] = ("builtin", "webhook", "rag", "agent", "client")
"""Tool types an API-registered agent gets without the operator saying more: none of them
runs code or reads files of the document's choosing (``python`` needs an allowlisted module,
``mcp`` an allowlisted URL, so both are opt-in)."""

DEFAULT_REGISTERED_BUILTINS: tuple[str, ...] = (
    "calculator",
    "current_time",
    "json_transform",
    "text_summarize",
    "http_get",
    "datetime_now",
    "get_current_time",
    "http_request",
    "web_scrape",
    "send_webhook",
    "wikipedia",
    "rag_query",
    "cache_store",
    "graphql_query",
)
"""Builtins a registered agent may use by default. The network ones (``http_get``,
``http_request``, ``web_scrape``, ``send_webhook``, ``wikipedia``, ``graphql_query``) reach
only public addresses through the SSRF guard, and only ``network_hosts`` when the policy sets
it, as webhooks do;
private networks only when ``allow_private_network`` says so. Left out: ``read_file`` and
``write_file`` (they need ``file_roots``), ``sql_query`` (it needs ``sql_dsns``), and what
uses the operator's own accounts (``send_slack``, ``send_email``, ``web_search``), and
``rag_ingest`` (it writes into a pipeline every tenant shares). ``rag_query`` reads the
operator's pipelines, as ``rag`` tools (granted by default) do; ``cache_store`` keeps bounded
values in the agent's own namespace (tenant and agent)."""


class RegistrationSettings(ConfigModel):
    """What an agent registered through the API may use: an allowlist, secure by default.

    Agent files in the agents folder are the operator's and are not limited by this; every
    document posted to ``/v1/agents`` is, whoever posts it. Each list can be overridden in
    Lambda by an ``ASTROMESH_REGISTRATION_*`` variable (:mod:`astromesh.security.policy`).

    Attributes:
        tool_types: ``spec.tools[].type`` values allowed.
        builtins: builtin tool names allowed.
        python_modules: modules (and their submodules) whose functions may be ``python``
            tools; ``None``: the Python packages in the agents folder.
        mcp_urls: URL prefixes an ``mcp`` tool over streamable HTTP may name (stdio MCP is
            never allowed for registered agents).
        file_roots: folders under which ``read_file`` roots may lie (relative to the agents
            folder); ``/proc``, ``/sys``, ``/dev``, ``/etc`` and the state folder never.
        allow_private_network: whether webhook, ``http_get`` and MCP tools of registered
            agents may reach private and loopback addresses (their own
            ``allow_private_network`` must say so too). Metadata addresses never.
        network_hosts: when set, the only hosts (``host``, ``host:port``, ``*.domain``) their
            webhook, ``http_get`` and MCP tools may reach.
        model_hosts: hosts a model candidate's ``endpoint`` may point at, for providers not
            defined by a ProviderConfig (those keep the operator's endpoint).
        secret_envs: environment variables a webhook's ``secret_env`` may name (HMAC keys
            the operator shares with registered agents on purpose).
        sql_dsns: connection strings ``sql_query`` may use (exactly as the document writes
            them); the state database only if listed here.
        max_iterations / max_timeout_seconds / max_output_tokens / max_replans: the most a
            registered agent may ask for in ``orchestration`` and in a model candidate's
            ``parameters.max_tokens``: every iteration is a call of the operator's models,
            paid by the operator, so a document cannot ask for a run without end.
    """

    tool_types: list[str] = Field(default_factory=lambda: list(DEFAULT_REGISTERED_TOOL_TYPES))
    builtins: list[str] = Field(default_factory=lambda: list(DEFAULT_REGISTERED_BUILTINS))
    python_modules: list[str] | None = None
    mcp_urls: list[str] = Field(default_factory=list)
    file_roots: list[str] = Field(default_factory=list)
    allow_private_network: bool = False
    network_hosts: list[str] | None = None
    model_hosts: list[str] = Field(default_factory=list)
    secret_envs: list[str] = Field(default_factory=list)
    sql_dsns: list[str] = Field(default_factory=list)
    max_iterations: int = Field(25, ge=1)
    max_timeout_seconds: float = Field(900, gt=0)
    max_output_tokens: int = Field(8192, ge=1)
    max_replans: int = Field(5, ge=0)

    @field_validator("tool_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        for i, kind in enumerate(value):
            if kind not in TOOL_TYPES:
                raise config_error(
                    f"unknown tool type '{kind}'; expected one of {one_of(TOOL_TYPES)}",
                    field=str(i),
                )
        return value

    @field_validator("builtins")
    @classmethod
    def _known_builtins(cls, value: list[str]) -> list[str]:
        for i, name in enumerate(value):
            if name not in BUILTIN_TOOLS:
                raise config_error(
                    f"unknown builtin tool '{name}'; expected one of {one_of(BUILTIN_TOOLS)}",
                    field=str(i),
                )
        return value

    @field_validator("mcp_urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for i, url in enumerate(value):
            if not url.startswith(("http://", "https://")):
                raise config_error(f"'{url}' is not an http(s) URL", field=str(i))
        return value


class TelemetrySettings(ConfigModel):
    """What goes on the runtime's trace spans."""

    capture_message_content: bool = False
    """Prompts, answers, tool arguments and results on spans (after each agent's PII
    redaction), as ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` does."""


class RuntimeConfigSpec(ConfigModel):
    """``spec`` of a RuntimeConfig."""

    api: ApiSettings = Field(default_factory=ApiSettings)
    defaults: RuntimeDefaults = Field(default_factory=RuntimeDefaults)
    state: StateSettings = Field(default_factory=StateSettings)
    registration: RegistrationSettings = Field(default_factory=RegistrationSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)


class RuntimeConfigDocument(ConfigDocument):
    """``kind: RuntimeConfig``."""

    kind: Literal["RuntimeConfig"]
    spec: RuntimeConfigSpec
