"""The templates are sam-ready: every variable a function reads is declared (sam's --env-vars
only sets declared ones), infra/sam-env.json sets exactly those, writable paths are under
/tmp, and each function's environment stays within Lambda's 4 KB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from infra.bundling import AGENTS_SOURCE
from infra.functions import BY_NAME

from astromesh.local.templates import read_deployment
from infra import environment as env

pytestmark = pytest.mark.infra

SAM_ENV = Path(__file__).resolve().parents[2] / "infra" / "sam-env.json"
LAMBDA_ENVIRONMENT_LIMIT = 4 * 1024


def _environments(synthesized) -> dict[str, dict[str, object]]:
    """Function folder name -> its template's Variables (intrinsics left as they are)."""
    found = {}
    for resource in synthesized.resources("runtime", "AWS::Lambda::Function").values():
        props = resource["Properties"]
        name = props.get("FunctionName", "")
        for key in BY_NAME:
            if name == f"astromesh-{synthesized.stacks.settings.name}-{key.replace('_', '-')}":
                found[key] = props["Environment"]["Variables"]
    return found


def test_every_variable_the_functions_read_is_declared(synthesized):
    environments = _environments(synthesized)
    assert set(environments) == set(BY_NAME)
    for key, variables in environments.items():
        declared = env.declared_variables(BY_NAME[key], AGENTS_SOURCE)
        assert set(declared) <= set(variables), key
        for name in ("ASTROMESH_STATE_PATH", "ASTROMESH_REDIS_URL", "AWS_ENDPOINT_URL"):
            assert name in variables, (key, name)
        # a variable the stack sets keeps its value; the others are empty
        assert variables[env.STATE_BACKEND_ENV] == synthesized.stacks.settings.state_backend
        assert variables["ASTROMESH_STATE_PATH"] == ""
    whatsapp, telegram = environments["whatsapp"], environments["telegram"]
    assert {"WHATSAPP_APP_SECRET", "WHATSAPP_API_URL", "WHATSAPP_DEFAULT_AGENT"} <= set(whatsapp)
    assert {"TELEGRAM_BOT_TOKEN", "TELEGRAM_API_URL"} <= set(telegram)
    assert "WHATSAPP_APP_SECRET" not in telegram  # each channel's own, no more
    assert {"ASTROMESH_WS_CALLBACK_URL", "ASTROMESH_WS_FLUSH_MS"} <= set(environments["ws_message"])
    assert {"ASTROMESH_INGEST_PIPELINE", "ASTROMESH_FAISS_S3_URI"} <= set(environments["ingestion"])
    # what the shipped agents read with a default, and their api_key_env names
    assert {"OPENAI_API_KEY", "OPENAI_BASE_URL"} <= set(environments["api"])


def test_sam_env_sets_every_declared_variable_and_only_those(dev):
    """A key sam would ignore (undeclared) is a silent mistake; a declared variable missing
    from the file is one a sam user cannot see how to set."""
    parameters = json.loads(SAM_ENV.read_text())["Parameters"]
    environments = _environments(dev)
    every = {name for variables in environments.values() for name in variables}
    empty = {n for variables in environments.values() for n, v in variables.items() if v == ""}
    assert set(parameters) <= every, sorted(set(parameters) - every)
    assert empty <= set(parameters), sorted(empty - set(parameters))
    # the state machine ARNs are overridable: declared, and in the file
    assert {env.SFN_EXPRESS_ARN_ENV, env.SFN_STANDARD_ARN_ENV} <= set(parameters)
    assert all(isinstance(value, str) for value in parameters.values())


def test_sam_env_keeps_writable_paths_under_tmp():
    parameters = json.loads(SAM_ENV.read_text())["Parameters"]
    assert parameters["ASTROMESH_STATE_BACKEND"] == "sqlite"
    assert parameters["ASTROMESH_STATE_PATH"].startswith("/tmp/")
    assert parameters["ASTROMESH_RESOLVE_ENV"] == "[]"  # no Secrets Manager in sam


def test_each_environment_fits_lambdas_4_kb(synthesized):
    """Lambda refuses a function whose variables (names and values) exceed 4 KB. Values only
    an account knows (endpoints) are counted at 100 characters each."""
    deployment = read_deployment(synthesized.outdir, synthesized.stacks.settings.name,
                                 region="ap-southeast-2")  # fmt: skip
    for function in deployment.functions.values():
        size = sum(
            len(name) + (100 if not isinstance(value, str) else len(value.encode()))
            for name, value in function.environment.items()
        )
        assert size < LAMBDA_ENVIRONMENT_LIMIT - 1024, (function.name, size)  # room to grow
