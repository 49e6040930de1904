"""``astromesh local``: start-up time with and without the synth, and sync run latency.

Starts the command as a developer does (``tests/support/local_server.py``): first on an empty
``--cdk-out`` (it synthesizes), then ``--starts`` more times on that assembly (fresh: no
synth). On the last one it times REST runs of an agent on the scripted model server through
the Express machine (``prepare`` -> ``step`` -> ``act`` -> ``step``, which observes, ->
``finalize``, one tool call): the first (cold: every function imported) and ``--runs`` warm
ones. Prints figures only, no asserts.

    python bench/local.py [--starts 3] [--runs 20] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "layers" / "runtime")]

from tests.support.agents import primary, python_tool, write_agent  # noqa: E402
from tests.support.local_server import LocalServer  # noqa: E402
from tests.support.model_servers import Reply, ScriptedOpenAIServer  # noqa: E402

SAMPLE_KEY = {"x-api-key": "am_sampleevents_c2FtcGxlLWV2ZW50cy1ub3QtYS1zZWNyZXQ"}


def run_once(server: LocalServer, model: ScriptedOpenAIServer) -> float:
    model.push(Reply(tool_calls=[("add", {"a": 2, "b": 3})]), Reply("5"))
    started = time.perf_counter()
    answer = httpx.post(f"{server.url}/v1/agents/helper/run", json={"query": "2+3?"},
                        headers=SAMPLE_KEY, timeout=120)  # fmt: skip
    seconds = time.perf_counter() - started
    if answer.status_code != 200 or answer.json().get("answer") != "5":
        raise SystemExit(f"run failed: {answer.status_code} {answer.text[:300]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3, help="starts on a fresh cdk.out")
    parser.add_argument("--runs", type=int, default=20, help="warm sync runs")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="astromesh-bench-local-") as folder, \
            ScriptedOpenAIServer() as model:  # fmt: skip
        tmp = Path(folder)
        write_agent(tmp / "agents", "helper", model=primary(model.url),
                    tools=[python_tool("add", "add")])  # fmt: skip
        options = ["--cdk-out", str(tmp / "cdk.out"), "--agents", str(tmp / "agents"),
                   "--state-path", str(tmp / "state.db"), "--redis-url", args.redis_url,
                   "--env-vars", str(_quiet(tmp))]  # fmt: skip

        with LocalServer(*options) as first:
            pass
        print(f"start-up with synth (empty cdk.out): {first.startup_seconds:.1f} s")

        starts: list[float] = []
        for index in range(args.starts):
            server = LocalServer(*options).start()
            starts.append(server.startup_seconds)
            if index < args.starts - 1:
                server.stop()
        print(f"start-up, cdk.out fresh ({args.starts} starts): median "
              f"{statistics.median(starts):.2f} s, min {min(starts):.2f} s")  # fmt: skip

        try:
            cold = run_once(server, model)
            warm = [run_once(server, model) for _ in range(args.runs)]
        finally:
            server.stop()
        warm.sort()
        p95 = warm[max(0, round(0.95 * len(warm)) - 1)]
        print(f"sync run through the Express machine (6 Lambda tasks, 1 tool call): first "
              f"{cold * 1000:.0f} ms (cold starts); warm ({args.runs}): median "
              f"{statistics.median(warm) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")  # fmt: skip


def _quiet(folder: Path) -> Path:
    path = folder / "env.json"
    path.write_text('{"Parameters": {"POWERTOOLS_LOG_LEVEL": "WARNING", "ASTROMESH_METRICS": '
                    '"none"}}')  # fmt: skip
    return path


if __name__ == "__main__":
    main()
