"""Typed request and response bodies of the ``/v1`` routes (what ``/openapi.json`` shows).

Field names follow upstream Astromesh's contract (``docs/api.md``); fields we add are
marked in their descriptions. Response models allow extra fields so that a field added to
the run view later reaches callers without a change here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from astromesh.config.issues import ConfigIssue
from astromesh.text_boundary import Shallow
from astromesh.tools.client import ToolOutput


def _whole(value: Any) -> Any:
    """``5.0`` is the integer 5, as JSON Schema's ``integer`` says; ``5.5`` and ``"5"`` stay
    what they are, and strict validation refuses them."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeNumber = Annotated[int, BeforeValidator(_whole)]
"""An integer field of a strict request body."""


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(_Open):
    code: str = Field(description="Stable machine-readable code, e.g. not_found, bad_json")
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
    detail: str = Field(
        description="The same message as error.message: upstream's FastAPI field, which its"
        " clients read"
    )


class RunRequest(BaseModel):
    """``POST /v1/agents/{name}/run`` and ``/stream``.

    Unknown fields are ignored, as upstream's model did: a client sending more than these
    must keep working. Known fields are strict: ``"async": 0`` or ``"query": 5`` is a 422,
    not a guess at what was meant (the request bodies here all are)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", strict=True)

    query: str = Field(min_length=1, max_length=200_000)
    session_id: str = Field("default", min_length=1, max_length=256)
    context: dict[str, Any] | None = None
    run_async: bool = Field(
        False,
        alias="async",
        description="Ours: answer 202 with the run id at once (same as ?mode=async)",
    )
    connections: dict[str, Any] | None = Field(
        None,
        json_schema_extra={"maxProperties": 0},
        description="Upstream's per-run credentials for integration tools. Refused (422) when"
        " not empty: no tool here reads per-run credentials, and credentials a run cannot use"
        " must not be accepted as if they were",
    )

    @field_validator("connections")
    @classmethod
    def _no_connections(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value:
            raise ValueError(
                "per-run connections are not supported here: no tool of this runtime reads"
                " per-run credentials (tools get theirs from the server's configuration);"
                " send null or {}"
            )
        return value


class UsageLineView(_Open):
    provider: str
    model: str
    role: str = "default"
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0


class UsageView(_Open):
    tokens_in: int = 0
    tokens_out: int = 0
    model: str | None = None
    by_model: list[UsageLineView] = Field(default_factory=list)


class RunResponse(_Open):
    """Upstream's run response plus ``run_id``, ``status``, ``session_id`` and ``error``."""

    answer: str
    steps: list[dict[str, Any]]
    usage: UsageView
    trace: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    chain: dict[str, Any] | None = None
    run_id: str
    status: str
    session_id: str | None = None
    error: str | None = None


class RunAccepted(BaseModel):
    run_id: str
    status: str = "running"
    agent: str
    session_id: str


class RunCancelled(BaseModel):
    run_id: str
    status: str


class AgentSummary(_Open):
    name: str
    version: str
    namespace: str
    description: str | None = None
    pattern: str | None = Field(None, description="Null for a draft that does not validate")
    display_name: str | None = None
    status: str = Field(
        description="deployed or paused; draft (upstream's) for an agent that does not load"
    )
    error: str | None = Field(None, description="A draft's: why it does not load")
    origin: Literal["file", "registered"] = Field(description="Ours: where it is defined")
    tenant: str | None = Field(
        None, description="Ours: the tenant owning a registered agent (null for file agents)"
    )


class SkippedAgent(BaseModel):
    """A file agent that validates but cannot run here, and where its file says why."""

    name: str
    file: str
    line: int | None = None
    column: int | None = None
    field: str = Field(description="The document field at fault (spec.tools.0), or empty")
    message: str


class AgentList(BaseModel):
    agents: list[AgentSummary] = Field(description="The agents this key may run")
    skipped: list[SkippedAgent] = Field(
        default_factory=list,
        description="Ours, admins only (empty for other keys): file agents skipped at load"
        " because their configuration cannot run here; running one answers 409"
        " agent_unrunnable",
    )


class DocumentWarning(BaseModel):
    """An upstream field the document uses that means nothing here (it was not refused)."""

    field: str = Field(description="The document field, e.g. spec.tools[0].permissions")
    line: int | None = None
    column: int | None = None
    message: str


class AgentRegistered(BaseModel):
    name: str
    status: Literal["registered"] = "registered"
    revision: int
    warnings: list[DocumentWarning] = Field(
        default_factory=list,
        description="Ours: upstream fields accepted but ignored or not enforced, and why",
    )


class AgentUpdated(BaseModel):
    agent: str
    status: Literal["updated"] = "updated"
    revision: int
    warnings: list[DocumentWarning] = Field(
        default_factory=list,
        description="Ours: upstream fields accepted but ignored or not enforced, and why",
    )


def document_warnings(issues: list[ConfigIssue]) -> list[DocumentWarning]:
    """The warnings of a posted document, in the response's shape (no server file names)."""
    return [
        DocumentWarning(field=i.field, line=i.line, column=i.column, message=i.message)
        for i in issues
    ]


class AgentRemoved(BaseModel):
    name: str
    status: Literal["removed"] = "removed"


class AgentStatusChanged(BaseModel):
    agent: str
    status: Literal["paused", "deployed"]


class HistoryMessage(_Open):
    role: str
    content: str


class HistoryResponse(BaseModel):
    agent: str
    session_id: str
    history: list[HistoryMessage]
    limit: int


class HistoryCleared(BaseModel):
    agent: str
    session_id: str
    status: Literal["cleared"] = "cleared"
    removed: int


class ToolInfo(_Open):
    name: str
    description: str
    parameters: dict[str, Any]
    agent: str = Field(description="Ours: the agent that has this tool")
    tenant: str | None = Field(
        None, description="Ours: the tenant owning the agent if registered (null: a file agent)"
    )
    type: str


class ToolList(BaseModel):
    tools: list[ToolInfo]


class ToolOutputsRequest(BaseModel):
    """``POST /v1/runs/{id}/tool_outputs``: one output per pending client call."""

    model_config = ConfigDict(strict=True)

    tool_outputs: list[ToolOutput]


class RagIngestRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    pipeline: str
    document: str
    metadata: Annotated[dict[str, Any], Shallow] = Field(default_factory=dict)
    doc_id_prefix: str = "doc"


class RagQueryRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    pipeline: str
    query: str
    top_k: WholeNumber = Field(5, ge=1, le=100)


class WebhookAccepted(BaseModel):
    """A verified delivery: ``accepted`` messages will be answered (malformed items and
    redeliveries are acknowledged without being counted here)."""

    status: Literal["ok"] = "ok"
    accepted: int = Field(ge=0)


class Health(_Open):
    status: Literal["ok"] = "ok"
    version: str
    agents: int
    auth: Literal["required", "auto"] = Field(
        description="Ours: required, or auto (open while no API key exists)"
    )


class SystemStatus(_Open):
    """``GET /v1/system/status``: upstream's daemon status, in the fields its CLI prints."""

    version: str
    uptime_seconds: float
    mode: Literal["dev", "lambda"] = Field(
        description="dev: a long-lived server (astromesh dev); lambda: the api function"
    )
    agents_loaded: int = Field(description="File agents that can run here")
    pid: int
    services: dict[str, bool] = Field(
        default_factory=dict, description="Upstream's node services: none here (always empty)"
    )
    peers: list[dict[str, Any]] = Field(
        default_factory=list, description="Upstream's mesh peers: none here (always empty)"
    )
    mesh: dict[str, Any] | None = Field(None, description="Upstream's mesh: none here (null)")


class DoctorCheck(_Open):
    status: Literal["ok", "degraded", "error", "unavailable", "not_configured"]
    message: str = ""


class ProviderInfo(_Open):
    """One provider a ProviderConfig names."""

    name: str
    type: str
    endpoint: str = Field("", description="Empty for a provider type's default endpoint")
    models: list[str]
    api_key_env: str | None = Field(
        None, description="The name of the variable holding the key, never the key"
    )


class ProviderList(BaseModel):
    """``GET /v1/providers``: upstream's ``astromeshctl providers list`` reads ``providers``."""

    providers: list[ProviderInfo]
    count: int


class DoctorReport(BaseModel):
    """``GET /v1/system/doctor``: ``healthy`` is true when no check is degraded, in error or
    unavailable (a part that is not configured does not count against it)."""

    healthy: bool
    checks: dict[str, DoctorCheck]


class BuiltinToolInfo(_Open):
    name: str
    description: str
    parameters: dict[str, Any]
    allowed: bool = Field(
        description="Ours: whether POST /v1/tools/execute may run it here (the registration"
        " policy's builtins)"
    )


class BuiltinToolList(BaseModel):
    tools: list[BuiltinToolInfo]
    count: int


class ToolExecuteRequest(BaseModel):
    """``POST /v1/tools/execute``: upstream's ``tool_name`` and ``arguments``; ours adds the
    tool's ``config`` (what an agent document's ``config`` would say), checked like a
    registered agent's."""

    model_config = ConfigDict(strict=True)

    tool_name: str = Field(min_length=1, max_length=128)
    arguments: Annotated[dict[str, Any], Shallow] = Field(default_factory=dict)
    config: Annotated[dict[str, Any], Shallow] = Field(default_factory=dict)


class ToolExecuteResult(_Open):
    tool: str
    status: Literal["ok", "error"]
    result: Any = Field(description="The tool's value (status ok) or its error message")
    duration_ms: float


class RagPipelineSummary(_Open):
    name: str
    description: str
    backend: str


class RagPipelineList(BaseModel):
    pipelines: list[RagPipelineSummary]
