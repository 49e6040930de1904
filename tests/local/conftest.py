"""One ``astromesh local`` for the package, started as a developer starts it.

The app is synthesized once into a session folder (``--cdk-out``); the command then runs in a
subprocess on free ports over the real Redis and a PostgreSQL database of its own (the state
and the pgvector store, as RDS would hold them), with an agents folder whose models are the
scripted OpenAI-compatible server, a recording Graph API / Bot API for the channels' replies
and a deterministic embedding server. The sample events' channel secrets are in its
environment, so the emulated Secrets Manager holds them (as an operator puts them in AWS).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from astromesh.local.synth import synthesize
from tests.support import services
from tests.support.agents import primary, python_tool, write_agent
from tests.support.embedding_servers import EmbeddingServer
from tests.support.local_server import REPO, LocalServer
from tests.support.messaging import SAMPLE_EVENTS_ENV, PlatformServer
from tests.support.model_servers import ScriptedOpenAIServer

SAMPLE_KEY = "am_sampleevents_c2FtcGxlLWV2ZW50cy1ub3QtYS1zZWNyZXQ"
KEY_HEADERS = {"x-api-key": SAMPLE_KEY}
PIPELINE = "notes"
SAMPLE_PIPELINE = "local-faq"
"""The pipeline the ingestion samples' key names (``local-faq/...``)."""


@pytest.fixture(scope="session")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dev stage synthesized once (the first start of every test server reuses it)."""
    out = tmp_path_factory.mktemp("cdk-out")
    synthesize(REPO, out, "dev")
    return out


@pytest.fixture(scope="session")
def model() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as server:
        yield server


@pytest.fixture(scope="session")
def assistant_model() -> Iterator[ScriptedOpenAIServer]:
    """The model of ``assistant``, the agent the sample events and the channels use (its own
    queue, so the channels' asynchronous work cannot take another test's replies)."""
    with ScriptedOpenAIServer() as server:
        yield server


@pytest.fixture(scope="session")
def platform() -> Iterator[PlatformServer]:
    with PlatformServer() as server:
        yield server


@pytest.fixture(scope="session")
def embedder() -> Iterator[EmbeddingServer]:
    with EmbeddingServer(dimension=8) as server:
        yield server


@pytest.fixture(scope="session")
def local_db(postgres_dsn: str) -> Iterator[str]:
    dsn = services.create_database(postgres_dsn)
    yield dsn
    services.drop_database(dsn)


def write_pipeline(folder: Path, name: str, embedder_url: str) -> None:
    """A pgvector pipeline in the state's PostgreSQL, embedded by the test embedder."""
    (folder / f"{name}.rag.yaml").write_text(
        f"""apiVersion: astromesh/v1
kind: RAGPipeline
metadata: {{name: {name}}}
spec:
  chunking: {{strategy: markdown, chunk_size: 200, overlap: 0}}
  embeddings: {{provider: openai_compat, model: fake, endpoint: "{embedder_url}/v1",
                dimension: 8}}
  vector_store: {{backend: pgvector, connection: "${{ASTROMESH_POSTGRES_DSN}}",
                  collection: {name.replace("-", "_")}}}
  retrieval: {{top_k: 3}}
"""
    )


def write_agents(folder: Path, model_url: str, assistant_url: str, embedder_url: str) -> None:
    write_agent(folder, "helper", model=primary(model_url), tools=[python_tool("add", "add")])
    write_agent(folder, "assistant", model=primary(assistant_url))
    write_pipeline(folder, PIPELINE, embedder_url)
    write_pipeline(folder, SAMPLE_PIPELINE, embedder_url)
    (folder / "review.workflow.yaml").write_text(REVIEW_WORKFLOW)


REVIEW_WORKFLOW = """apiVersion: astromesh/v1
kind: Workflow
metadata:
  name: review
spec:
  steps:
    - name: draft
      agent: assistant
    - name: approve
      approval:
        prompt: "Publish {{ steps.draft.output }}?"
        approver: ana
"""
"""A workflow with an approval, run on the emulated workflow machine (test_workflows.py)."""


@pytest.fixture(scope="session")
def local_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("astromesh-local")


@pytest.fixture(scope="session")
def local(
    local_folder: Path,
    cdk_out: Path,
    model: ScriptedOpenAIServer,
    assistant_model: ScriptedOpenAIServer,
    platform: PlatformServer,
    embedder: EmbeddingServer,
    local_db: str,
    redis_url: str,
) -> Iterator[LocalServer]:
    agents = local_folder / "agents"
    write_agents(agents, model.url, assistant_model.url, embedder.url)
    prefix = f"astromesh-test:{uuid.uuid4().hex[:12]}"
    env_vars = local_folder / "env.json"
    env_vars.write_text(
        json.dumps(
            {
                "Parameters": {
                    "WHATSAPP_API_URL": platform.url,
                    "TELEGRAM_API_URL": platform.url,
                    "WHATSAPP_DEFAULT_AGENT": "assistant",
                    "TELEGRAM_DEFAULT_AGENT": "assistant",
                    "ASTROMESH_CHANNELS_REDIS_PREFIX": f"{prefix}:channels",
                    "ASTROMESH_BUDGET_PREFIX": f"{prefix}:budget",
                    "ASTROMESH_WS_FLUSH_MS": "20",
                    "POWERTOOLS_LOG_LEVEL": "WARNING",
                }
            }
        )
    )
    server = LocalServer(
        "--cdk-out", str(cdk_out),
        "--agents", str(agents),
        "--postgres-dsn", local_db,
        "--redis-url", redis_url,
        "--env-vars", str(env_vars),
        env=SAMPLE_EVENTS_ENV,
    )  # fmt: skip
    with server:
        yield server
    services.delete_prefix(redis_url, prefix)
