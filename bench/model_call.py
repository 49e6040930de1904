"""One model call's cost: streamed against whole (non-streamed), against the HTTP floor.

A run asks for a streamed answer only when its sink shows tokens (CLI, SSE, WebSocket); a
REST call or a Step Functions stage asks for the whole answer in one JSON body
(docs/performance.md, "Model calls"). This prints what each costs per call against the
scripted OpenAI-compatible server (``tests/support/model_servers.py``) in a process of its
own on 127.0.0.1, so this process's CPU time is the client's alone:

- HTTP floor: a bare sync ``httpx.Client`` POST with ``"stream": false``, the body parsed.
- whole: ``OpenAICompatModel.complete`` (what a run nobody listens to pays).
- streamed: ``OpenAICompatModel.stream`` to its final response (what a listened run pays).
- whole, no message cache: ``complete`` with the provider's cache of encoded messages
  (``models/wire_json.py``) holding nothing, so every message is encoded at every call.

Each call sends a conversation of ``--turns`` earlier tool-call turns and gets a tool call
back (a ReAct iteration's shape). The three take turns, ``--calls`` calls each per round,
for ``--rounds`` rounds; per side the median over rounds of wall and CPU time per call
(``time.process_time``: the machine's other jobs do not inflate it).

    python bench/model_call.py [--calls 200] [--rounds 7] [--turns 10]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_results

from _results import record  # noqa: E402 - needs the path above

from astromesh.models.base import ProviderSettings  # noqa: E402
from astromesh.models.openai_compat import OpenAICompatModel, _wire_message  # noqa: E402
from astromesh.models.types import Message, ToolCall, ToolDefinition  # noqa: E402
from astromesh.models.wire_json import WireCache  # noqa: E402

ADD = ToolDefinition(
    name="add",
    description="Add two numbers.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)


def conversation(turns: int) -> list[Message]:
    """A system prompt, a question and ``turns`` tool-call turns with their results."""
    messages = [Message.system("You are a benchmark."), Message.user("go")]
    for i in range(turns):
        call = ToolCall(id=f"call_{i}", name="add", arguments={"a": i, "b": 1})
        messages.append(Message.assistant("", [call]))
        messages.append(Message.tool(str(i + 1), tool_call_id=call.id, name="add"))
    return messages


@contextlib.contextmanager
def scripted_server(script: Path, replies: list[dict[str, object]]) -> Iterator[str]:
    """The scripted OpenAI server in a subprocess answering ``replies``; yields its URL."""
    script.write_text(json.dumps(replies))
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.model_servers", "openai", "--script", str(script)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per side per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--turns", type=int, default=10, help="earlier turns sent per call")
    args = parser.parse_args()
    messages = conversation(args.turns)
    loop = asyncio.new_event_loop()
    reply = {"tool_calls": [["add", {"a": 1, "b": 2}]]}
    with (
        tempfile.TemporaryDirectory() as tmp,
        scripted_server(
            Path(tmp) / "script.json", [reply] * (4 * (args.calls * args.rounds + 2))
        ) as url,
    ):
        model = OpenAICompatModel(ProviderSettings("openai_compat", "scripted", url))
        uncached = OpenAICompatModel(ProviderSettings("openai_compat", "scripted", url))
        uncached._wire = WireCache(_wire_message, capacity=0)
        client = httpx.Client()
        wire = {
            "model": "scripted",
            "messages": [m.model_dump(exclude_none=True) for m in messages],
            "tools": [{"type": "function", "function": ADD.model_dump()}],
            "stream": False,
        }

        def floor() -> None:
            client.post(f"{url}/chat/completions", json=wire).json()

        async def drain() -> None:
            async for _ in model.stream(messages, tools=[ADD]):
                pass

        sides: dict[str, Callable[[], object]] = {
            "HTTP floor (sync httpx, stream false)": floor,
            "whole (Model.complete)": lambda: loop.run_until_complete(
                model.complete(messages, tools=[ADD])
            ),
            "streamed (Model.stream)": lambda: loop.run_until_complete(drain()),
            "whole, no message cache": lambda: loop.run_until_complete(
                uncached.complete(messages, tools=[ADD])
            ),
        }
        wall: dict[str, list[float]] = {name: [] for name in sides}
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        for call in sides.values():  # warm: imports, the pooled connection
            call()
            call()
        for _ in range(args.rounds):
            for name, call in sides.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                for _ in range(args.calls):
                    call()
                wall[name].append((time.perf_counter() - started) * 1000 / args.calls)
                cpu[name].append((time.process_time() - started_cpu) * 1000 / args.calls)
        client.close()
        loop.run_until_complete(model.aclose())
        loop.run_until_complete(uncached.aclose())
    loop.close()
    base_wall = statistics.median(next(iter(wall.values())))
    base_cpu = statistics.median(next(iter(cpu.values())))
    print(
        f"one model call ({args.turns} earlier turns, a tool call back), {args.calls} calls x"
        f" {args.rounds} rounds, interleaved; medians of the rounds, ms per call"
    )
    print(f"{'side':<40}{'wall ms':>9}{'x floor':>9}{'CPU ms':>9}{'x floor':>9}")
    for name in sides:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"{name:<40}{w:>9.3f}{w / base_wall:>9.2f}{c:>9.3f}{c / base_cpu:>9.2f}")
        record("model_call", f"per call, {name}", c, "ms CPU", ratio=c / base_cpu)


if __name__ == "__main__":
    main()
