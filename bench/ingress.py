"""Ingress costs of the API function: cold import and per-request overhead.

Prints, with no asserts:

1. Cold start: the median wall time (fresh interpreter each time, every row interleaved
   with the others) of ``python -c pass``, of a minimal FastAPI+Mangum app, of a minimal
   Powertools resolver, and of loading each ``functions/*/handler.py`` (imports plus what
   the module builds, what a Lambda init does), over a folder with one agent; each handler
   as a ratio of its reference app, against issue 18's target (PASS/MISS). Two more rows
   import what the light handlers' workers load on their first invocation.
2. Per request, in one warm process: API Gateway events through ``handler`` (Powertools
   decorators, Mangum, our middleware, auth, FastAPI) against a bare Starlette route behind
   Mangum, for ``GET /v1/health`` and for a run of an agent whose model answers at once
   (in-process, zero latency), against ``runtime.run`` of the same agent on the same store.

Every row of the cold start reads the same kind of code: by default compiled bytecode, which
one unmeasured round writes first (into a private ``PYTHONPYCACHEPREFIX``, so neither the
checkout nor site-packages is touched), as a deployed layer ships it (``infra/bundling.py``)
and as any interpreter caches it; with ``--from-source``, Python source, compiled at every
start (a layer built without bytecode). Mixing the two would compare an app whose packages
pip compiled at install time with handlers compiled at every start, which is what a machine
that sets ``PYTHONDONTWRITEBYTECODE`` and runs an editable checkout otherwise measures.

    python bench/ingress.py [--cold 7] [--requests 300] [--cold-only] [--from-source]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
HANDLER = REPO / "functions" / "api" / "handler.py"
EVENTS = REPO / "events" / "api"
KEY_ID, SECRET = "sampleevents", "c2FtcGxlLWV2ZW50cy1ub3QtYS1zZWNyZXQ"

AGENT = {
    "apiVersion": "astromesh/v1",
    "kind": "Agent",
    "metadata": {"name": "assistant"},
    "spec": {
        "model": {"primary": {"provider": "openai_compat", "model": "instant"}},
        "prompts": {"system": "You are a benchmark."},
        "orchestration": {"pattern": "react", "max_iterations": 4, "timeout_seconds": 60},
    },
}


def _load_command(path: Path) -> str:
    """Python source that imports one handler file as Lambda does on a cold start."""
    return (
        "import importlib.util as u; "
        f"s = u.spec_from_file_location('handler', {str(path)!r}); "
        "m = u.module_from_spec(s); s.loader.exec_module(m)"
    )


HANDLERS = sorted((REPO / "functions").glob("*/handler.py"))

MINIMAL_FASTAPI = """\
from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/v1/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


handler = Mangum(app, lifespan="off")
"""
"""The reference for ``api``: one FastAPI route behind Mangum."""

MINIMAL_POWERTOOLS = """\
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

app = APIGatewayRestResolver()


@app.get("/v1/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


def handler(event, context):
    return app.resolve(event, context)
"""
"""The reference for the light handlers: one route of a Powertools resolver."""

LIGHT = (
    "ws_connect", "ws_message", "whatsapp", "telegram", "orchestration_step", "tool_executor",
    "workflow_step",
)  # fmt: skip

TARGETS: dict[str, tuple[str, float | None]] = {
    "api": ("fastapi+mangum", 1.5),
    **dict.fromkeys(LIGHT, ("powertools", 2.5)),
    "ingestion": ("powertools", None),
    "first use: channel workers": ("powertools", None),
    "first use: step workers": ("powertools", None),
}
"""Issue 18's targets: ``api`` within 1.5x the minimal FastAPI app, the light handlers within
2.5x the minimal Powertools resolver (``ingestion`` carries the ML stack: reported only)."""


FIRST_USE = {
    "first use: channel workers": (
        "astromesh.runtime",
        "astromesh.channels.services",
        "astromesh.channels.aws.websocket",
        "astromesh.channels.messaging.inbox",
    ),
    "first use: step workers": (
        "astromesh.runtime",
        "astromesh.channels.control_plane",
        "astromesh.executors.driver",
    ),
}
"""What the light handlers' workers import when they first build the runtime (on the first
invocation, not at module load): printed beside the handlers so that the cost moved out of
the init stays in view."""


def cold_start(
    env: dict[str, str], runs: int, folder: Path, *, from_source: bool = False
) -> dict[str, float]:
    """Median seconds per row, the rows interleaved (one fresh interpreter each, round-robin)
    so that a noisy machine slows every row alike; prints ratios against the minimal apps.

    Every row reads bytecode (written by a first, unmeasured round into a private cache), or
    with ``from_source`` every row compiles its source at every start (see the module's
    docstring)."""
    python = sys.executable
    cache = folder / "pycache"
    cache.mkdir(exist_ok=True)
    env = {**env, "PYTHONPYCACHEPREFIX": str(cache)}
    references = {"fastapi+mangum": MINIMAL_FASTAPI, "powertools": MINIMAL_POWERTOOLS}
    rows: dict[str, list[str]] = {"python -c pass": [python, "-c", "pass"]}
    for name, source in references.items():
        path = folder / f"minimal_{name.replace('+', '_')}.py"
        path.write_text(source)
        rows[name] = [python, "-c", _load_command(path)]
    for path in HANDLERS:
        rows[path.parent.name] = [python, "-c", _load_command(path)]
    for label, modules in FIRST_USE.items():
        rows[label] = [python, "-c", "import " + ", ".join(modules)]
    samples: dict[str, list[float]] = {label: [] for label in rows}
    failed: dict[str, str] = {}
    if from_source:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # the cache stays empty: source at every start
    else:
        writing = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        for command in rows.values():
            subprocess.run(command, env=writing, capture_output=True)
    for _ in range(runs):
        for label, command in rows.items():
            if label in failed:
                continue
            started = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True)
            if done.returncode:  # a handler that needs AWS settings
                reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
                failed[label] = reason[0][:80]
                continue
            samples[label].append(time.perf_counter() - started)
    medians = {label: statistics.median(s) for label, s in samples.items() if s}
    code = "from source, compiled at every start" if from_source else "from bytecode"
    print(f"cold start (median of {runs} fresh interpreters, rows interleaved, every row {code})")
    print(f"  {'load':<28} {'median':>9} {'spread':>15}  {'ratio':>26}  target")
    for label, seconds in medians.items():
        low, high = min(samples[label]), max(samples[label])
        spread = f"{low * 1000:.0f}-{high * 1000:.0f} ms"
        reference, target = TARGETS.get(label, (None, None))
        ratio = verdict = ""
        if reference is not None:
            ratio = f"{seconds / medians[reference]:.2f}x {reference}"
            verdict = (
                "-"
                if target is None
                else f"<= {target}x "
                + ("PASS" if seconds / medians[reference] <= target else "MISS")
            )
        print(f"  {label:<28} {seconds * 1000:6.0f} ms {spread:>15}  {ratio:>26}  {verdict}")
    for label, reason in failed.items():
        print(f"  {label:<28} did not load here: {reason}")
    return medians


def _instant_model() -> type:
    from astromesh.models.base import Model
    from astromesh.models.types import ModelResponse, StreamEvent, TextDelta, Usage

    class InstantModel(Model):
        """Answers at once: what is left is the runtime's and the API's own cost."""

        provider_type = "instant"

        async def stream(self, messages: Sequence[Any], **_: Any) -> AsyncIterator[StreamEvent]:
            yield TextDelta("ok")
            yield ModelResponse(
                content="ok",
                usage=Usage(tokens_in=5, tokens_out=1),
                provider="instant",
                model=self.model,
            )

    return InstantModel


def _timed(call: Callable[[], Any], count: int) -> tuple[float, float]:
    """Median and 90th percentile, in microseconds, after a warm-up."""
    for _ in range(min(20, count)):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9)]


def per_request(count: int) -> None:
    import importlib.util

    from mangum import Mangum
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from astromesh.models import registry

    registry._PROVIDERS["openai_compat"] = f"{__name__}:InstantModel"
    spec = importlib.util.spec_from_file_location("api_handler", HANDLER)
    assert spec is not None and spec.loader is not None
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)

    async def health(_request: Any) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    bare = Mangum(Starlette(routes=[Route("/v1/health", health)]), lifespan="off")
    context = _Context()
    health_event = json.loads((EVENTS / "health.json").read_text())
    run_event = json.loads((EVENTS / "run.json").read_text())

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):  # Powertools prints EMF metrics per invocation
        bare_health = _timed(lambda: bare(health_event, context), count)
        api_health = _timed(lambda: handler.handler(health_event, context), count)
        app_health = _timed(lambda: handler._adapter(health_event, context), count)
        api_run = _timed(lambda: handler.handler(run_event, context), count // 3)
        app_run = _timed(lambda: handler._adapter(run_event, context), count // 3)
        answer = json.loads(handler.handler(run_event, context)["body"])
    assert answer["status"] == "succeeded", answer

    runtime = handler.app.state.services.runtime
    loop = asyncio.get_event_loop()
    direct_run = _timed(
        lambda: loop.run_until_complete(runtime.run("assistant", "hi", session_id="direct")),
        count // 3,
    )

    print(f"\nper request (warm, {count} requests; median / p90, microseconds)")
    rows = [
        ("bare Starlette route behind Mangum", bare_health),
        ("Mangum over our app: GET /v1/health", app_health),
        ("handler: GET /v1/health", api_health),
        ("runtime.run, instant model (no API)", direct_run),
        ("Mangum over our app: POST .../run", app_run),
        ("handler: POST /v1/agents/{name}/run", api_run),
    ]
    for label, (median, p90) in rows:
        print(f"  {label:<40} {median:9.0f} / {p90:9.0f}")
    powertools = api_health[0] - app_health[0]
    print(
        f"  overhead on health: {api_health[0] - bare_health[0]:.0f} us"
        f" (Powertools decorators {powertools:.0f} us, our app {app_health[0] - bare_health[0]:.0f}"
        f" us); on a run, against runtime.run: {api_run[0] - direct_run[0]:.0f} us"
        f" ({app_run[0] - direct_run[0]:.0f} us without Powertools: auth, registry, JSON, Mangum)"
    )


class _Context:
    function_name = "astromesh-api"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:astromesh-api"
    memory_limit_in_mb = 512
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/astromesh-api"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


async def _seed_key(state: Path) -> None:
    from astromesh.auth import key_store_for
    from astromesh.stores.sqlite import SQLiteBackend

    backend = SQLiteBackend(state)
    await key_store_for(backend).issue("bench", ["*"], key_id=KEY_ID, secret=SECRET)
    await backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=7, help="fresh interpreters per figure")
    parser.add_argument("--requests", type=int, default=300, help="requests per figure")
    parser.add_argument("--cold-only", action="store_true", help="skip the per-request figures")
    parser.add_argument(
        "--from-source",
        action="store_true",
        help="every row compiles its source at every start (no bytecode anywhere)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        agents = Path(tmp) / "agents"
        agents.mkdir()
        (agents / "assistant.agent.yaml").write_text(yaml.safe_dump(AGENT))
        state = Path(tmp) / "state.db"
        asyncio.run(_seed_key(state))
        env = {
            "ASTROMESH_AGENTS_DIR": str(agents),
            "ASTROMESH_STATE_BACKEND": "sqlite",
            "ASTROMESH_STATE_PATH": str(state),
            "POWERTOOLS_SERVICE_NAME": "astromesh-api",
        }
        os.environ.update(env)
        cold_start({**os.environ, **env}, args.cold, Path(tmp), from_source=args.from_source)
        if not args.cold_only:
            per_request(args.requests)


InstantModel = _instant_model()

if __name__ == "__main__":
    main()
