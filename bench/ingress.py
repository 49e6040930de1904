"""Ingress costs of the API function: cold import and per-request overhead.

Prints, with no asserts:

1. Cold start: the median wall time (fresh interpreter each time) of ``python -c pass``,
   of importing the handler's dependencies alone (FastAPI, Mangum, Powertools and the X-Ray
   SDK its Tracer imports even when tracing is disabled), and of
   loading ``functions/api/handler.py`` (imports plus building the runtime and the app, what
   a Lambda init does), over a folder with one agent.
2. Per request, in one warm process: API Gateway events through ``handler`` (Powertools
   decorators, Mangum, our middleware, auth, FastAPI) against a bare Starlette route behind
   Mangum, for ``GET /v1/health`` and for a run of an agent whose model answers at once
   (in-process, zero latency), against ``runtime.run`` of the same agent on the same store.

    python bench/ingress.py [--cold 7] [--requests 300]
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


LOAD_HANDLER = _load_command(HANDLER)
OTHER_HANDLERS = sorted(
    p for p in (REPO / "functions").glob("*/handler.py") if p.parent.name != "api"
)


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


def _median_seconds(command: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cold_start(env: dict[str, str], runs: int) -> None:
    python = sys.executable
    rows = [
        ("python -c pass", [python, "-c", "pass"]),
        (
            "import fastapi, mangum, powertools+xray",
            [python, "-c", "import fastapi, mangum, aws_lambda_powertools, aws_xray_sdk.core"],
        ),
        ("load functions/api/handler.py", [python, "-c", LOAD_HANDLER]),
    ]
    rows += [
        (f"load functions/{p.parent.name}/handler.py", [python, "-c", _load_command(p)])
        for p in OTHER_HANDLERS
    ]
    print(f"cold start (median of {runs} fresh interpreters)")
    base = None
    for label, command in rows:
        try:
            seconds = _median_seconds(command, env, runs)
        except subprocess.CalledProcessError as exc:  # a handler that needs AWS settings
            reason = exc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            print(f"  {label:<44} did not load here: {reason[0][:80]}")
            continue
        base = seconds if base is None else base
        print(f"  {label:<44} {seconds * 1000:8.1f} ms   (+{(seconds - base) * 1000:.1f} ms)")


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
        cold_start({**os.environ, **env}, args.cold)
        per_request(args.requests)


InstantModel = _instant_model()

if __name__ == "__main__":
    main()
