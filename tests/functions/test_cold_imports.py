"""What each handler imports at module load (a fresh interpreter, as a Lambda init does).

A structural check, not a timing: the modules a handler's first request does not need stay
out of ``sys.modules`` after its module is loaded (docs/performance.md, "Lazy imports"), so
a change that makes them eager again fails here, whatever the machine's speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agents import write_agent

REPO = Path(__file__).resolve().parents[2]

HEAVY = (
    "aws_xray_sdk",  # Powertools' Tracer imports it even when tracing is off
    "opentelemetry.sdk",
    "jinja2",
    "jsonschema",
    "httpx",
    "rich",
    "click",
    "numpy",
    "faiss",
    "onnxruntime",
    "mcp",
)
"""Never at a handler's module load (the API renders its agents' prompts: ``jinja2`` aside)."""

RUNTIME = ("astromesh.runtime", "astromesh.agent", "pydantic", "yaml", "fastapi", "ahocorasick")
"""What the light handlers build on their first invocation (the worker's properties)."""

LIGHT = (
    "ws_connect", "ws_message", "whatsapp", "telegram", "orchestration_step", "tool_executor",
    "workflow_step",
)  # fmt: skip

_PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps([name for name in sys.argv[2:] if name in sys.modules]))
"""


def _loaded(handler: str, names: tuple[str, ...], tmp_path: Path) -> list[str]:
    agents = tmp_path / "agents"
    write_agent(agents, "assistant", prompts={"system": "Hello {{ agent.name }}."})
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "ASTROMESH_AGENTS_DIR": str(agents),
        "ASTROMESH_STATE_BACKEND": "sqlite",
        "ASTROMESH_STATE_PATH": str(tmp_path / "state.db"),
        "POWERTOOLS_SERVICE_NAME": "astromesh-test",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    env.pop("LAMBDA_TASK_ROOT", None)  # outside Lambda: tracing is off, as in the bench
    path = REPO / "functions" / handler / "handler.py"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), *names],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("handler", LIGHT)
def test_light_handlers_load_neither_the_runtime_nor_heavy_libraries(handler, tmp_path):
    assert _loaded(handler, HEAVY + RUNTIME, tmp_path) == []


API_ON_FIRST_USE = (
    "astromesh.channels.schemas",
    "astromesh.channels.rest.health",
    "astromesh.channels.rest.agents",
    "astromesh.channels.rest.workflows",
    "astromesh.channels.rest.rag",
    "astromesh.channels.rest.templates",
    "astromesh.channels.ws",
    "astromesh.channels.messaging.routes",
    "astromesh.channels.console",
    "astromesh.orchestration.supervisor",
    "astromesh.rag.ingest",
    "astromesh.config.workflow",
    "astromesh.config.rag",
    "astromesh.config.agent_template",
    "astromesh.config.pydantic_errors",
    "astromesh.security.registration",
    "astromesh.guardrails.pii",
    "astromesh.executors.driver",
    "referencing",
)
"""What the API imports on the first request that needs it: each router module (and the
request/response models) on the first request under its prefixes, or for the OpenAPI
document (astromesh.channels.lazy_routers); an orchestration pattern when an agent using it
is built; RAG ingestion with a pipeline; a kind's config model with the first document of
that kind (none but agents here), the wording of pydantic's errors with the first invalid
one; the registration check with the first registration; a guardrail kind with an agent
using it; the step workers' driver; ``referencing`` with a tool's JSON Schema."""


def test_the_api_loads_its_app_without_xray_otel_sdk_http_clients_or_ml(tmp_path):
    """The app and the agents are built at init (what its first request needs); the X-Ray
    SDK only when tracing is on, httpx when a provider, tool or webhook is first used, and
    the routers when a request reaches them."""
    heavy = tuple(name for name in HEAVY if name != "jinja2")
    assert _loaded("api", (*heavy, *API_ON_FIRST_USE, "fastapi"), tmp_path) == ["fastapi"]


def test_the_ingestion_handler_leaves_the_ml_stack_to_its_first_pipeline(tmp_path):
    assert _loaded("ingestion", HEAVY, tmp_path) == []


_GC_PROBE = """
import gc, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))
"""


@pytest.mark.parametrize("handler", ["api", "ingestion"])
def test_the_heavy_inits_end_with_the_collector_on_and_their_objects_frozen(handler, tmp_path):
    """astromesh.coldstart.init_phase: off during the init, on again after it (a collector
    left off would let every warm invocation's cycles pile up), the init's objects frozen."""
    agents = tmp_path / "agents"
    write_agent(agents, "assistant")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "ASTROMESH_AGENTS_DIR": str(agents),
        "ASTROMESH_STATE_BACKEND": "sqlite",
        "ASTROMESH_STATE_PATH": str(tmp_path / "state.db"),
        "POWERTOOLS_SERVICE_NAME": "astromesh-test",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    path = REPO / "functions" / handler / "handler.py"
    done = subprocess.run(
        [sys.executable, "-c", _GC_PROBE, str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    enabled, frozen = json.loads(done.stdout.strip().splitlines()[-1])
    assert enabled is True
    assert frozen > 10_000  # the modules, classes and app the init built


def test_init_phase_turns_the_collector_back_on_when_the_init_fails():
    import gc

    from astromesh.coldstart import init_phase

    assert gc.isenabled()
    try:
        with pytest.raises(RuntimeError), init_phase():
            assert not gc.isenabled()
            raise RuntimeError("init failed")
        assert gc.isenabled()
    finally:
        gc.unfreeze()  # this test process's objects go back to the collector


def test_the_websocket_gateway_builds_without_the_channel_hubs_http_client():
    """What ``ChannelWorker.gateway`` imports on the WebSocket functions' first invocation:
    the connection registry and the WebSocket protocol, not the messaging inbox (httpx)."""
    probe = (
        "import sys; import astromesh.channels.aws.worker, astromesh.channels.aws.connections, "
        "astromesh.channels.aws.websocket, astromesh.channels.messaging.guards, "
        "astromesh.runtime; print([m for m in ('httpx', 'astromesh.channels.messaging.inbox') "
        "if m in sys.modules])"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
