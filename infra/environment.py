"""Names of the environment variables the stacks give the functions, in one place.

The runtime's own names are imported from the runtime, so a rename there cannot silently
leave the functions configured under the old name. The names defined here are the
infrastructure's own (the cold-start resolver's, the GPU endpoint's, the layers' paths).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from astromesh.channels.aws.management import ENDPOINT_ENV as WS_CALLBACK_URL_ENV
from astromesh.channels.aws.websocket import FLUSH_MS_ENV as WS_FLUSH_MS_ENV
from astromesh.channels.messaging.config import CHANNELS_FILE_ENV
from astromesh.channels.messaging.config import ENV_VARIABLES as CHANNEL_ENV_VARIABLES
from astromesh.channels.messaging.inbox import PREFIX_ENV as CHANNELS_PREFIX_ENV
from astromesh.channels.settings import AUTH_ENV, MAX_BODY_ENV, MAX_INFLIGHT_ENV
from astromesh.channels.settings import EXPRESS_MACHINE_ENV as SFN_EXPRESS_ARN_ENV
from astromesh.channels.settings import STANDARD_MACHINE_ENV as SFN_STANDARD_ARN_ENV
from astromesh.channels.settings import WORKFLOW_MACHINE_ENV as SFN_WORKFLOW_ARN_ENV
from astromesh.runtime import (
    AGENTS_DIR_ENV,
    BUDGET_PREFIX_ENV,
    POSTGRES_DSN_ENV,
    REDIS_URL_ENV,
    STATE_BACKEND_ENV,
    STATE_PATH_ENV,
)
from astromesh.stores.postgres_connect import IAM_AUTH_ENV as POSTGRES_IAM_AUTH_ENV
from astromesh.stores.postgres_connect import (
    PREPARE_THRESHOLD_ENV as POSTGRES_PREPARE_THRESHOLD_ENV,
)
from astromesh.telemetry.metrics import METRICS_ENV, STAGE_ENV

if TYPE_CHECKING:
    from infra.functions import FunctionSpec

__all__ = [
    "ADOT_WRAPPER",
    "AGENTS_DIR",
    "AGENTS_DIR_ENV",
    "AUTH_ENV",
    "EXEC_WRAPPER",
    "FAISS_S3_URI_ENV",
    "GPU_API_KEY_ENV",
    "GPU_ENDPOINT_ENV",
    "INGEST_PIPELINE_ENV",
    "MAX_BODY_ENV",
    "NEXT_WRAPPER_ENV",
    "POSTGRES_DSN_ENV",
    "POSTGRES_IAM_AUTH_ENV",
    "POSTGRES_PREPARE_THRESHOLD_ENV",
    "REDIS_URL_ENV",
    "RESOLVE_ENV",
    "SFN_EXPRESS_ARN_ENV",
    "SFN_STANDARD_ARN_ENV",
    "SFN_WORKFLOW_ARN_ENV",
    "STAGE_ENV",
    "STATE_BACKEND_ENV",
    "WS_CALLBACK_URL_ENV",
    "agent_variables",
    "declared_variables",
]

# -- defined by the infrastructure -------------------------------------------------------------
GPU_ENDPOINT_ENV = "ASTROMESH_GPU_ENDPOINT"
"""The GPU model server's OpenAI-compatible base URL (``.../v1``), for a ProviderConfig entry's
``endpoint: ${ASTROMESH_GPU_ENDPOINT}``."""
GPU_API_KEY_ENV = "ASTROMESH_GPU_API_KEY"
"""The GPU model server's key, for the same entry's ``api_key_env``."""

# -- the cold-start resolver (infra/lambda_env/astromesh-env) --------------------------------
RESOLVE_ENV = "ASTROMESH_RESOLVE_ENV"
"""JSON list of what to read from Secrets Manager / SSM into the environment before the
handler module is imported; secrets never sit in the function's configuration."""
NEXT_WRAPPER_ENV = "ASTROMESH_NEXT_EXEC_WRAPPER"
"""Another exec wrapper to hand over to (the ADOT layer's ``/opt/otel-instrument``)."""
EXEC_WRAPPER = "/opt/astromesh-env"
ADOT_WRAPPER = "/opt/otel-instrument"
AGENTS_DIR = "/opt/agents"
"""Where the agents layer puts ``agents/`` (the value of ``ASTROMESH_AGENTS_DIR``)."""


# -- declared for sam local: every variable the functions read ---------------------------------
INGEST_PIPELINE_ENV = "ASTROMESH_INGEST_PIPELINE"
"""The ingestion function's pipeline (functions/ingestion/handler.py)."""
FAISS_S3_URI_ENV = "ASTROMESH_FAISS_S3_URI"
"""Where the ingestion function keeps a FAISS index in S3."""

AWS_CLIENT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_DISABLE_HOST_PREFIX_INJECTION")
"""boto3's own settings, empty (boto3 ignores them then): sam's --env-vars can point the
functions' clients at an emulation (``astromesh local``'s moto), where the state machine ARNs
the functions start are served; ``StartSyncExecution``'s ``sync-`` host prefix cannot reach a
local endpoint, hence the second."""

_AGENT_VARIABLE = re.compile(
    r"\$\{([A-Za-z_][A-Za-z0-9_]*):-|api_key_env:\s*[\"']?([A-Za-z_][A-Za-z0-9_]*)"
)


def agent_variables(agents_dir: Path) -> tuple[str, ...]:
    """Variables the shipped agent documents read and can do without: ``${NAME:-default}``
    references and ``api_key_env`` names (a bare ``${NAME}`` is left out: declared empty it
    would load as an empty string instead of failing with the variable's name)."""
    names: set[str] = set()
    for path in sorted(agents_dir.rglob("*.y*ml")):
        for match in _AGENT_VARIABLE.finditer(path.read_text(encoding="utf-8")):
            names.add(match[1] or match[2])
    return tuple(sorted(names))


def declared_variables(spec: FunctionSpec, agents_dir: Path) -> tuple[str, ...]:
    """What ``spec``'s function reads besides what the stacks set: the template declares
    each of them empty, so ``sam local invoke --env-vars infra/sam-env.json`` can set it (sam
    only overrides variables a template declares). Every reader treats an empty variable as
    unset, and the cold-start resolver fills an empty one it has a source for."""
    names = [*AWS_CLIENT_VARIABLES, STATE_PATH_ENV, REDIS_URL_ENV, METRICS_ENV, BUDGET_PREFIX_ENV]
    if spec.name == "api":
        names.append(MAX_INFLIGHT_ENV)
    if spec.channel is not None:
        names += [*CHANNEL_ENV_VARIABLES[spec.channel], CHANNELS_FILE_ENV]
    if spec.channel is not None or spec.posts_frames or spec.name == "ws_connect":
        names.append(CHANNELS_PREFIX_ENV)
    if spec.posts_frames:
        names += [WS_CALLBACK_URL_ENV, WS_FLUSH_MS_ENV]
    if spec.reads_documents:
        names += [INGEST_PIPELINE_ENV, FAISS_S3_URI_ENV]
    names += agent_variables(agents_dir)
    return tuple(dict.fromkeys(names))
