"""Load with an accounting check: N concurrent runs and M WhatsApp messages (each delivered
1 + R times) against ``astromesh dev`` in a subprocess.

The model is the scripted OpenAI-compatible server of ``tests/support/model_servers.py`` (a
subprocess answering every request after ``--model-delay``), the Graph API the recording
server of ``tests/support/messaging.py``. Prints, with no asserts: successes, failures by
``status/code``, p50/p95 latency of runs and of webhook deliveries, and the accounting check
(every run answered with an id is stored and ended; every accepted message got exactly one
reply; no replay was accepted). Exits 1 when the accounting check fails.

    python bench/load.py [--runs 100] [--messages 50] [--replays 2] [--concurrency 32]
        [--state sqlite|redis] [--redis-url URL | --own-redis [--kill-redis-at 0.5]
        [--redis-down 1]] [--postgres-dsn DSN] [--model-delay 0.05]

``--state redis`` needs ``--redis-url`` (and, for the tiered store and durable claims,
``--postgres-dsn``); use a Redis of its own, the benchmark writes under ``astromesh-load:``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "layers" / "runtime")]

from tests.support.messaging import (  # noqa: E402 - needs the path above
    PlatformServer,
    signed,
    wa_text,
    whatsapp_delivery,
    whatsapp_env,
)

WEBHOOK = "/v1/channels/whatsapp/webhook"


@dataclass
class Tally:
    """What one kind of request got back."""

    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, started: float, response: httpx.Response | None, error: str = "") -> None:
        self.latencies.append(time.perf_counter() - started)
        if response is None:
            self.outcomes[f"transport/{error}"] += 1
        elif response.status_code < 300:
            self.outcomes["ok"] += 1
        else:
            try:
                code = response.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = "?"
            retry = " (Retry-After)" if "retry-after" in response.headers else ""
            self.outcomes[f"{response.status_code}/{code}{retry}"] += 1

    def line(self, name: str) -> str:
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered) if ordered else 0.0
        p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)] if ordered else 0.0
        failures = {k: v for k, v in self.outcomes.items() if k != "ok"}
        return (
            f"{name:<11} {len(ordered):>5} sent  {self.outcomes['ok']:>5} ok  "
            f"p50 {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  failures {failures or '{}'}"
        )


class OwnRedis:
    """``redis-server`` on a free port without persistence (a restart comes back empty)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("--own-redis needs redis-server on PATH")
        self.process = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "no", "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


OWN_REDIS: OwnRedis | None = None


async def inject_fault(args: argparse.Namespace) -> None:
    """With ``--kill-redis-at``: kill the benchmark's own Redis that far into the load, and
    start it again (empty) ``--redis-down`` seconds later."""
    if OWN_REDIS is None or args.kill_redis_at is None:
        return
    await asyncio.sleep(args.kill_redis_at)
    OWN_REDIS.kill()
    print(f"fault: Redis killed at {args.kill_redis_at:.1f} s", flush=True)
    await asyncio.sleep(args.redis_down)
    OWN_REDIS.start()
    print(f"fault: Redis restarted empty after {args.redis_down:.1f} s down", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_model(folder: Path, replies: int, delay: float, env: dict[str, str]) -> tuple[Any, str]:
    """The scripted model server, with enough replies for every run (plus a margin)."""
    script = folder / "script.json"
    script.write_text(json.dumps([{"content": "Load answer.", "delay": delay}] * replies))
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.model_servers", "openai", "--script", str(script)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def start_server(folder: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (folder / "server.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "astromesh.cli", "dev", "--port", str(port), "--agents", "agents"],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_healthy(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("astromesh dev exited; see server.log")
        try:
            if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("astromesh dev did not start within 60 s")


async def drive(args: argparse.Namespace, base: str, graph: PlatformServer) -> bool:
    runs, deliveries = Tally(), Tally()
    run_ids: list[str] = []
    accepted: Counter[str] = Counter()
    gate = asyncio.Semaphore(args.concurrency)
    tag = uuid.uuid4().hex[:6]

    async with httpx.AsyncClient(base_url=base, timeout=120) as client:

        async def one_run(i: int) -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/v1/agents/helper/run", json={"query": f"q{i}", "session_id": f"s{i}"}
                    )
                except httpx.TransportError as exc:
                    runs.add(started, None, type(exc).__name__)
                    return
                runs.add(started, response)
                if response.status_code == 200:
                    run_ids.append(response.json()["run_id"])

        async def one_delivery(i: int) -> None:
            sender = f"load{tag}{i}"
            payload = whatsapp_delivery(
                wa_text(f"m{i}", message_id=f"wamid.{tag}.{i}", sender=sender)
            )
            body, headers = signed(payload)
            async with gate:
                started = time.perf_counter()
                try:
                    response = await client.post(WEBHOOK, content=body, headers=headers)
                except httpx.TransportError as exc:
                    deliveries.add(started, None, type(exc).__name__)
                    return
                deliveries.add(started, response)
                if response.status_code == 200:
                    accepted[sender] += int(response.json().get("accepted", 0))

        work = [one_run(i) for i in range(args.runs)]
        work += [one_delivery(i) for i in range(args.messages) for _ in range(1 + args.replays)]
        random.Random(0).shuffle(work)  # runs, deliveries and replays interleaved
        started = time.perf_counter()
        fault = asyncio.create_task(inject_fault(args))
        await asyncio.gather(*work)
        wall = time.perf_counter() - started
        await fault

        # Accounting.
        expected_replies = sum(accepted.values())
        deadline = time.monotonic() + 60
        while len(graph.posts) < expected_replies and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # anything more would arrive now
        replies = Counter(post.body.get("to") for post in graph.posts)
        unended: list[str] = []
        ended: Counter[str] = Counter()
        for run_id in run_ids:
            record = await client.get(f"/v1/runs/{run_id}")
            status = record.json().get("status") if record.status_code == 200 else None
            if status in (None, "running"):
                unended.append(run_id)
            else:
                ended[str(status)] += 1

    print(f"wall {wall:.2f} s for {args.runs} runs and {len(work) - args.runs} deliveries")
    print(runs.line("runs"))
    print(deliveries.line("deliveries"))
    print(f"stored runs by status {dict(ended)}")
    twice = {s: n for s, n in accepted.items() if n > 1}
    unanswered = [s for s, n in accepted.items() if n and replies[s] == 0]
    answered_twice = {s: n for s, n in replies.items() if n > 1}
    stray = [s for s in replies if not accepted.get(s)]
    print(
        f"accounting: runs answered with an id {len(run_ids)}, stored and ended "
        f"{len(run_ids) - len(unended)}; messages accepted {sum(accepted.values())} of "
        f"{args.messages} distinct, replies {len(graph.posts)}; accepted twice {len(twice)}, "
        f"unanswered {len(unanswered)}, answered twice {len(answered_twice)}, stray {len(stray)}"
    )
    ok = not (unended or twice or unanswered or answered_twice or stray)
    print("accounting check:", "PASS" if ok else "FAIL")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--replays", type=int, default=2, help="extra deliveries per message")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--state", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--redis-url")
    parser.add_argument("--postgres-dsn")
    parser.add_argument("--model-delay", type=float, default=0.05)
    parser.add_argument("--max-inflight", type=int, default=64)
    parser.add_argument(
        "--own-redis", action="store_true", help="start a redis-server for the run (--state redis)"
    )
    parser.add_argument("--kill-redis-at", type=float, help="seconds into the load (--own-redis)")
    parser.add_argument("--redis-down", type=float, default=1.0, help="seconds before restart")
    args = parser.parse_args(argv)
    global OWN_REDIS
    if args.own_redis:
        OWN_REDIS = OwnRedis()
        OWN_REDIS.start()
        args.redis_url = OWN_REDIS.url
        args.state = "redis"
    if args.state == "redis" and not args.redis_url:
        parser.error("--state redis needs --redis-url or --own-redis")
    try:
        return _main(args)
    finally:
        if OWN_REDIS is not None:
            OWN_REDIS.kill()


def _main(args: argparse.Namespace) -> int:
    pythonpath = os.pathsep.join((str(REPO / "layers" / "runtime"), str(REPO)))
    base_env = {**os.environ, "PYTHONPATH": pythonpath}
    with tempfile.TemporaryDirectory(prefix="astromesh-load-") as tmp, PlatformServer() as graph:
        folder = Path(tmp)
        model, model_url = start_model(
            folder, args.runs + args.messages + 20, args.model_delay, base_env
        )
        agents = folder / "agents"
        agents.mkdir()
        agent = {
            "apiVersion": "astromesh/v1",
            "kind": "Agent",
            "metadata": {"name": "helper"},
            "spec": {
                "model": {
                    "primary": {
                        "provider": "openai_compat",
                        "model": "scripted",
                        "endpoint": model_url,
                    }
                },
                "prompts": {"system": "You are a load test."},
                "orchestration": {"pattern": "react", "max_iterations": 4, "timeout_seconds": 60},
            },
        }
        (agents / "helper.agent.yaml").write_text(yaml.safe_dump(agent, sort_keys=False))
        env = (
            base_env
            | whatsapp_env(graph.url)
            | {
                "ASTROMESH_STATE_PATH": str(folder / "state.db"),
                "ASTROMESH_STATE_BACKEND": args.state,
                "ASTROMESH_MAX_INFLIGHT_RUNS": str(args.max_inflight),
                "ASTROMESH_CHANNELS_REDIS_PREFIX": f"astromesh-load:{uuid.uuid4().hex[:8]}",
            }
        )
        if args.redis_url:
            env["ASTROMESH_REDIS_URL"] = args.redis_url
        if args.postgres_dsn:
            env["ASTROMESH_POSTGRES_DSN"] = args.postgres_dsn
        port = free_port()
        server = start_server(folder, port, env)
        try:
            wait_healthy(f"http://127.0.0.1:{port}", server)
            ok = asyncio.run(drive(args, f"http://127.0.0.1:{port}", graph))
        finally:
            server.terminate()
            server.wait(timeout=30)
            model.terminate()
            model.wait(timeout=10)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
