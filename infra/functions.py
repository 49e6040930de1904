"""The Lambda functions, one row per concern: the single table the stacks and tests read.

A row names the folder under ``functions/`` holding ``handler.py`` (Lambda handler
``handler.handler``) and what the function needs, from which the runtime stack derives its
role (least privilege: only the grants its row asks for), layers and environment. A row
whose folder has no ``handler.py`` yet is left out of the template with a warning, so the
stacks keep synthesizing while a function is being written; ``tests/infra`` checks every row
whose handler exists and lists the ones still missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from astromesh.config import LoadResult

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = REPO / "functions"

Channel = Literal["whatsapp", "telegram"]


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One function and what it is allowed to touch.

    Attributes:
        name: folder under ``functions/`` (and the function's logical name).
        concern: one line for the README table and the function's description.
        memory_mb / timeout_s: Lambda settings. API Gateway gives up on an integration at
            29 s; a function that invokes itself needs the longer timeout for that work.
        ml: always carries the ``ml`` layer (numpy, onnxruntime, tokenizers, pgvector's
            adapter, the embedding model): the RAG functions. Such a function carries the
            ``faiss`` layer too when some pipeline or semantic memory of the deployment uses
            FAISS (:func:`agents_need_faiss`; in AWS the store is pgvector).
        runs_agents: executes agents' steps (prepare, tool calls, finalize), so it carries
            the ``ml`` layer too when some agent of the deployment retrieves (a ``rag`` tool,
            semantic memory, a RAG pipeline: :func:`agents_need_ml`), the ``mcp`` layer when
            some agent has an MCP tool (:func:`agents_need_mcp`), and only then; light
            otherwise, for its cold start and size.
        model_keys: gets the provider API keys (it calls models or embedders).
        starts_runs: may start executions on both state machines.
        runs_workflows: starts executions of the workflow machine and answers its approvals
            (``SendTaskSuccess`` / ``SendTaskFailure`` with a stored task token): the API only.
        posts_frames: pushes WebSocket frames through the API Gateway Management API.
        channel: its messaging channel's secret becomes its environment.
        reads_documents: reads the documents bucket (S3 ingestion).
        invokes_itself: answers its route at once and runs the work in an asynchronous
            invocation of itself (``astromesh.channels.aws.invoke``); such invocations are
            not retried by Lambda, as a retry would run the agent (and reply) twice.
    """

    name: str
    concern: str
    memory_mb: int
    timeout_s: int
    ml: bool = False
    runs_agents: bool = False
    model_keys: bool = True
    starts_runs: bool = False
    runs_workflows: bool = False
    posts_frames: bool = False
    channel: Channel | None = None
    reads_documents: bool = False
    invokes_itself: bool = False

    @property
    def folder(self) -> Path:
        return FUNCTIONS_DIR / self.name

    @property
    def exists(self) -> bool:
        """Whether the handler is written (functions being written have no handler.py yet)."""
        return (self.folder / "handler.py").is_file()

    @property
    def service(self) -> str:
        """The Powertools service name, as the handlers spell it."""
        return "astromesh-" + self.name.replace("_", "-")


FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        "api",
        "REST ingress: the /v1 FastAPI app through Mangum (serves RAG queries too)",
        memory_mb=1024,
        timeout_s=29,
        ml=True,
        starts_runs=True,
        runs_workflows=True,
    ),
    FunctionSpec(
        "ws_connect",
        "WebSocket $connect / $disconnect: authenticate, connection registry in Redis",
        memory_mb=256,
        timeout_s=10,
        model_keys=False,
    ),
    FunctionSpec(
        "ws_message",
        "WebSocket $default: start a run, push its frames back to the connection",
        memory_mb=1024,
        timeout_s=300,
        runs_agents=True,
        starts_runs=True,
        posts_frames=True,
        invokes_itself=True,
    ),
    FunctionSpec(
        "whatsapp",
        "WhatsApp Cloud API webhook: verify, check signature, dedupe, start a run, reply",
        memory_mb=512,
        timeout_s=300,
        runs_agents=True,
        starts_runs=True,
        channel="whatsapp",
        invokes_itself=True,
    ),
    FunctionSpec(
        "telegram",
        "Telegram Bot API webhook: check the secret token, dedupe, start a run, reply",
        memory_mb=512,
        timeout_s=300,
        runs_agents=True,
        starts_runs=True,
        channel="telegram",
        invokes_itself=True,
    ),
    FunctionSpec(
        "orchestration_step",
        "One stage of a run (prepare / step / observe / finalize), a Step Functions task",
        memory_mb=1024,
        timeout_s=120,
        runs_agents=True,
    ),
    FunctionSpec(
        "tool_executor",
        "One tool call of a run (child agents run in-process), the Map state's task",
        memory_mb=1024,
        timeout_s=300,
        runs_agents=True,
    ),
    FunctionSpec(
        "workflow_step",
        "One step of a workflow run (advance / apply / await approval / fail), a Step "
        "Functions task of the workflow machine",
        memory_mb=1024,
        timeout_s=120,
        runs_agents=True,
    ),
    FunctionSpec(
        "ingestion",
        "RAG ingestion: S3 object created / removed -> chunk -> embed -> index",
        memory_mb=2048,
        timeout_s=900,
        ml=True,
        reads_documents=True,
    ),
)

BY_NAME = {spec.name: spec for spec in FUNCTIONS}

WS_ROUTES: dict[str, str] = {
    "$connect": "ws_connect",
    "$disconnect": "ws_connect",
    "$default": "ws_message",
}
"""WebSocket route -> function (docs/architecture.md §2: ws_connect owns the connection
registry)."""

WEBHOOK_ROUTES: dict[Channel, str] = {
    "whatsapp": "/v1/channels/whatsapp/webhook",
    "telegram": "/v1/channels/telegram/webhook",
}
"""REST paths served by a channel's own function instead of ``api`` (docs/api.md)."""

CHANNEL_SECRET_KEYS: dict[Channel, tuple[str, ...]] = {
    "whatsapp": (
        "WHATSAPP_VERIFY_TOKEN",
        "WHATSAPP_APP_SECRET",
        "WHATSAPP_ACCESS_TOKEN",
        "WHATSAPP_PHONE_NUMBER_ID",
    ),
    "telegram": ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET"),
}
"""The keys each channel's secret starts with: every key of the secret becomes an
environment variable of that name (``astromesh.channels.messaging`` reads them)."""


def agents_need_ml(agents: LoadResult) -> bool:
    """Whether some agent of the deployment embeds text at run time: a ``rag`` tool, semantic
    memory, or a RAG pipeline (whose local embedder, FAISS and pgvector adapter are in the
    ``ml`` layer)."""
    if agents.rag_pipelines:
        return True
    for document in agents.agents.values():
        spec = document.spec
        if spec.memory is not None and spec.memory.semantic is not None:
            return True
        if any(tool.type == "rag" for tool in spec.tools):
            return True
    return False


def agents_need_faiss(agents: LoadResult) -> bool:
    """Whether some RAG pipeline or semantic memory of the deployment keeps its vectors in
    FAISS (the ``faiss`` layer), rather than pgvector or an external store."""
    if any(doc.spec.vector_store.backend == "faiss" for doc in agents.rag_pipelines.values()):
        return True
    return any(
        doc.spec.memory is not None
        and doc.spec.memory.semantic is not None
        and doc.spec.memory.semantic.backend == "faiss"
        for doc in agents.agents.values()
    )


def agents_need_mcp(agents: LoadResult) -> bool:
    """Whether some agent of the deployment has an MCP tool (the ``mcp`` layer)."""
    return any(tool.type == "mcp" for doc in agents.agents.values() for tool in doc.spec.tools)


def carries_ml(spec: FunctionSpec, agents: LoadResult) -> bool:
    """Whether ``spec``'s function gets the ``ml`` layer for these agents."""
    return spec.ml or (spec.runs_agents and agents_need_ml(agents))


def carries_faiss(spec: FunctionSpec, agents: LoadResult) -> bool:
    """Whether ``spec``'s function gets the ``faiss`` layer (beside ``ml``)."""
    return carries_ml(spec, agents) and agents_need_faiss(agents)


def carries_mcp(spec: FunctionSpec, agents: LoadResult) -> bool:
    """Whether ``spec``'s function gets the ``mcp`` layer: it runs agents (the API runs
    synchronous runs in-process) and one of them has an MCP tool."""
    return (spec.runs_agents or spec.name == "api") and agents_need_mcp(agents)


def present() -> tuple[FunctionSpec, ...]:
    """The rows whose handler exists, in table order."""
    return tuple(spec for spec in FUNCTIONS if spec.exists)
