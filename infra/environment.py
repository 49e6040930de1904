"""Names of the environment variables the stacks give the functions, in one place.

The runtime's own names are imported from the runtime, so a rename there cannot silently
leave the functions configured under the old name. The names defined here are the
infrastructure's own (the cold-start resolver's, the GPU endpoint's, the layers' paths).
"""

from __future__ import annotations

from astromesh.channels.aws.management import ENDPOINT_ENV as WS_CALLBACK_URL_ENV
from astromesh.channels.settings import AUTH_ENV, MAX_BODY_ENV
from astromesh.channels.settings import EXPRESS_MACHINE_ENV as SFN_EXPRESS_ARN_ENV
from astromesh.channels.settings import STANDARD_MACHINE_ENV as SFN_STANDARD_ARN_ENV
from astromesh.runtime import (
    AGENTS_DIR_ENV,
    POSTGRES_DSN_ENV,
    REDIS_URL_ENV,
    STATE_BACKEND_ENV,
)
from astromesh.stores.postgres_connect import IAM_AUTH_ENV as POSTGRES_IAM_AUTH_ENV
from astromesh.stores.postgres_connect import (
    PREPARE_THRESHOLD_ENV as POSTGRES_PREPARE_THRESHOLD_ENV,
)
from astromesh.telemetry.metrics import STAGE_ENV

__all__ = [
    "ADOT_WRAPPER",
    "AGENTS_DIR",
    "AGENTS_DIR_ENV",
    "AUTH_ENV",
    "EXEC_WRAPPER",
    "GPU_API_KEY_ENV",
    "GPU_ENDPOINT_ENV",
    "MAX_BODY_ENV",
    "NEXT_WRAPPER_ENV",
    "POSTGRES_DSN_ENV",
    "POSTGRES_IAM_AUTH_ENV",
    "POSTGRES_PREPARE_THRESHOLD_ENV",
    "REDIS_URL_ENV",
    "RESOLVE_ENV",
    "SFN_EXPRESS_ARN_ENV",
    "SFN_STANDARD_ARN_ENV",
    "STAGE_ENV",
    "STATE_BACKEND_ENV",
    "WS_CALLBACK_URL_ENV",
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
