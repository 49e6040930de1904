"""Per-iteration cost of one ReAct loop: Astromesh (in-process and REST) against LangGraph,
Strands Agents and the bare HTTP floor, measured interleaved in one run.

The model is a scripted OpenAI-compatible server on 127.0.0.1 (``tests/support/
model_servers.py``) that asks for the tool ``add`` K times, then answers; every framework
talks to it through its own OpenAI client, so each iteration is one model call over HTTP
and one tool call. Per-iteration time = the run's wall time / K.

- HTTP floor: the same K+1 chat requests from a bare ``httpx.Client``, the tool called
  inline: what any framework must pay.
- Astromesh in-process: ``AgentRuntime.run`` with the SQLite store (every step persisted).
- Astromesh REST: ``POST /v1/agents/{name}/run`` on ``astromesh dev`` (uvicorn, SQLite),
  from a kept-alive ``httpx.Client``.
- LangGraph: ``create_react_agent`` over ``ChatOpenAI``, no checkpointer.
- Strands Agents: ``Agent`` over its ``OpenAIModel``, a fresh agent per run (its history
  would otherwise grow across runs; building it is timed with the run, a small share of
  K iterations), no callback handler.

The configurations take turns, one run each per round, so other jobs' load falls on all of
them alike; each prints its median, quartiles and ratio to the floor. A framework that is
not installed (``pip install 'astromesh[bench]'``) is skipped, saying so.

    python bench/peers.py [--tool-calls 20] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.support, from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_results

from _results import record  # noqa: E402 - needs the path above
from tests.support.local_server import command_env, free_port  # noqa: E402
from tests.support.model_servers import Reply, ScriptedOpenAIServer  # noqa: E402

TOOL_MODULE = '''
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b
'''


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def agent_document(endpoint: str) -> dict[str, object]:
    return {
        "apiVersion": "astromesh/v1",
        "kind": "Agent",
        "metadata": {"name": "peer"},
        "spec": {
            "model": {
                "primary": {"provider": "openai_compat", "model": "scripted", "endpoint": endpoint}
            },
            "prompts": {"system": "You are a benchmark."},
            "orchestration": {"pattern": "react", "max_iterations": 1000, "timeout_seconds": 600},
            "tools": [{"name": "add", "type": "python", "handler": "peer_tools:add"}],
        },
    }


Runner = Callable[[], None]


def script(server: ScriptedOpenAIServer, k: int) -> None:
    """Queue one run's replies: K tool calls, then the answer."""
    server.push(*[Reply(tool_calls=[("add", {"a": i, "b": 1})]) for i in range(k)], Reply("done"))


def fresh_session() -> str:
    """A session of its own for each Astromesh run, as each LangGraph run has its own state
    and each Strands run its own agent: in one shared session (``default``) every run would
    recall the turns of the runs before it (conversational memory is on by default) and send
    them with each model call, a larger request than the other sides make."""
    return uuid.uuid4().hex


def floor(url: str, k: int) -> Runner:
    client = httpx.Client()

    def run() -> None:
        messages: list[dict[str, object]] = [{"role": "user", "content": "go"}]
        while True:
            body = {"model": "scripted", "messages": messages, "stream": False}
            reply = client.post(f"{url}/chat/completions", json=body).json()
            message = reply["choices"][0]["message"]
            messages.append(message)
            if not message.get("tool_calls"):
                return
            for call in message["tool_calls"]:
                args = json.loads(call["function"]["arguments"])
                messages.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": str(add(**args))}
                )

    return run


def astromesh_inprocess(folder: Path, db: Path, loop: asyncio.AbstractEventLoop) -> Runner:
    from astromesh.runtime import AgentRuntime
    from astromesh.stores.sqlite import SQLiteBackend

    runtime = AgentRuntime(folder, env={}, state=SQLiteBackend(db))

    def run() -> None:
        done = loop.run_until_complete(runtime.run("peer", "go", session_id=fresh_session()))
        assert done.status.value == "succeeded", done.error

    return run


@contextlib.contextmanager
def astromesh_dev(folder: Path, home: Path) -> Iterator[str]:
    """``astromesh dev`` on a free port, its state in ``home``; yields its URL."""
    port = free_port()
    env = command_env({"PYTHONPATH": os.pathsep.join([str(REPO / "layers/runtime"), str(folder)])})
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "astromesh.cli",
            "dev",
            "--port",
            str(port),
            "--agents",
            str(folder),
        ],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"astromesh dev did not start: {process.stderr.read()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def astromesh_rest(url: str) -> Runner:
    client = httpx.Client(timeout=120)

    def run() -> None:
        answer = client.post(
            f"{url}/v1/agents/peer/run", json={"query": "go", "session_id": fresh_session()}
        )
        assert answer.status_code == 200 and answer.json()["status"] == "succeeded", answer.text

    return run


def langgraph(url: str) -> Runner:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent

    model = ChatOpenAI(model="scripted", base_url=url, api_key="unused", max_retries=0)
    with warnings.catch_warnings():  # its successor lives in `langchain`, a larger install
        warnings.simplefilter("ignore")
        graph = create_react_agent(model, [tool(add)])

    def run() -> None:
        graph.invoke({"messages": [("user", "go")]}, {"recursion_limit": 10_000})

    return run


def strands(url: str) -> Runner:
    from strands import Agent
    from strands import tool as strands_tool
    from strands.models.openai import OpenAIModel

    model = OpenAIModel(client_args={"base_url": url, "api_key": "unused"}, model_id="scripted")
    add_tool = strands_tool(add)

    def run() -> None:
        Agent(model=model, tools=[add_tool], callback_handler=None)("go")

    return run


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return q[0], statistics.median(values), q[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool-calls", type=int, default=20, help="K: iterations per run")
    parser.add_argument("--rounds", type=int, default=15, help="runs of each configuration")
    args = parser.parse_args()
    k = args.tool_calls
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as tmp, ScriptedOpenAIServer() as server:
        folder = Path(tmp) / "agents"
        folder.mkdir()
        (folder / "peer_tools.py").write_text(TOOL_MODULE)
        (folder / "peer.agent.yaml").write_text(yaml.safe_dump(agent_document(server.url)))
        sys.path.insert(0, str(folder))
        home = Path(tmp) / "home"
        home.mkdir()
        with astromesh_dev(folder, home) as dev_url:
            runners: dict[str, Runner] = {
                "HTTP floor (httpx, tool inline)": floor(server.url, k),
                "Astromesh in-process (SQLite)": astromesh_inprocess(
                    folder, Path(tmp) / "state.db", loop
                ),
                "Astromesh REST (astromesh dev)": astromesh_rest(dev_url),
            }
            for name, build in (("LangGraph", langgraph), ("Strands Agents", strands)):
                try:
                    runners[f"{name} {framework_version(name)}"] = build(server.url)
                except ImportError as exc:
                    print(f"{name}: skipped, not installed ({exc}): pip install 'astromesh[bench]'")
            samples: dict[str, list[float]] = {name: [] for name in runners}
            for run in runners.values():  # warm each once: imports, connections
                script(server, k)
                run()
            for round_ in range(args.rounds):
                names = list(runners)
                names = names[round_ % len(names) :] + names[: round_ % len(names)]
                for name in names:
                    script(server, k)
                    start = time.perf_counter()
                    runners[name]()
                    samples[name].append((time.perf_counter() - start) * 1000 / k)
    loop.close()
    report(samples, k, args.rounds)


def framework_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    package = {"LangGraph": "langgraph", "Strands Agents": "strands-agents"}[name]
    try:
        return version(package)
    except PackageNotFoundError as exc:
        raise ImportError(package) from exc


def report(samples: dict[str, list[float]], k: int, rounds: int) -> None:
    base = statistics.median(next(iter(samples.values())))
    print(
        f"per ReAct iteration (one model call over HTTP + one tool call), K={k},"
        f" {rounds} runs each,"
    )
    print("interleaved; ms per iteration: median [p25-p75]; ratio of medians to the HTTP floor")
    print(f"{'configuration':<36}{'median ms':>10}{'p25-p75 ms':>16}{'x floor':>9}")
    for name, values in samples.items():
        p25, p50, p75 = quartiles(values)
        print(f"{name:<36}{p50:>10.2f}{f'{p25:.2f}-{p75:.2f}':>16}{p50 / base:>9.2f}")
        record("peers", f"per iteration, {name}", p50, "ms", ratio=p50 / base, spread=(p25, p75))
    ours = statistics.median(samples["Astromesh REST (astromesh dev)"])
    for name, values in samples.items():
        if name.startswith(("LangGraph", "Strands")):
            print(f"Astromesh REST is {statistics.median(values) / ours:.1f}x faster than {name}")


if __name__ == "__main__":
    main()
