"""Time from a model's restart to the first successful run, with the circuit breaker's fixed
wait (before: every trial ``recovery_timeout`` = 60 s after the circuit opened) and with the
exponential backoff (now: the first trial after 2 s, then 4, 8, ... up to 60 s).

The model is the scripted OpenAI-compatible server in a subprocess on a fixed loopback port
(``tests/support/model_process.py``). For each setting and each outage length it: runs once
(succeeds), kills the model (SIGKILL), keeps starting a run every ``--interval`` seconds,
starts the model again after the outage, and stops at the first run that succeeds (or after
``--give-up`` seconds). It prints the time from the restart to that run's end, and how many
runs failed meanwhile. Asserts nothing.

    python bench/recovery.py [--down 5 20] [--interval 0.2] [--redis URL] [--only now]

``--redis`` shares the breaker through that Redis (under a prefix of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, from a checkout

from tests.support.agents import primary, write_agent
from tests.support.model_process import ModelProcess

from astromesh.runs.state import RunStatus
from astromesh.runtime import AgentRuntime

SETTINGS = {
    "before": {"failure_threshold": 3, "recovery_timeout": 60, "first_trial_after": 60},
    "now": {"failure_threshold": 3, "recovery_timeout": 60, "first_trial_after": 2},
}


def write_deployment(folder: Path, url: str, breaker: dict[str, float]) -> None:
    write_agent(folder, model=primary(url))
    settings = ", ".join(f"{k}: {v}" for k, v in breaker.items())
    (folder / "providers.yaml").write_text(
        "apiVersion: astromesh/v1\nkind: ProviderConfig\nmetadata: {name: p}\n"
        f"spec:\n  providers: {{}}\n  routing:\n    circuit_breaker: {{{settings}}}\n"
    )


async def one(
    label: str, down: float, interval: float, give_up: float, redis_url: str | None
) -> tuple[float | None, int]:
    with tempfile.TemporaryDirectory() as tmp, ModelProcess() as model:
        folder = Path(tmp)
        write_deployment(folder / "agents", model.url, SETTINGS[label])
        env = {"ASTROMESH_STATE_PATH": str(folder / "state.db")}
        if redis_url:
            env["ASTROMESH_REDIS_URL"] = redis_url
        runtime = AgentRuntime(folder / "agents", env=env)
        if redis_url:  # a prefix of its own: earlier rounds' circuits are not this one's
            agent = await runtime.get("helper")
            agent.router.breaker.prefix = f"astromesh-bench:{uuid.uuid4().hex[:8]}"  # type: ignore[union-attr]
        try:
            assert (await runtime.run("helper", "warm")).status is RunStatus.SUCCEEDED
            model.kill()
            killed = time.monotonic()
            failed, restarted = 0, None
            while True:
                now = time.monotonic()
                if restarted is None and now - killed >= down:
                    model.start()
                    restarted = time.monotonic()
                run = await runtime.run("helper", "are you there?")
                if run.status is RunStatus.SUCCEEDED:
                    if restarted is None:  # pragma: no cover - the model was down
                        raise RuntimeError("a run succeeded while the model was down")
                    return time.monotonic() - restarted, failed
                failed += 1
                if restarted is not None and time.monotonic() - restarted > give_up:
                    return None, failed
                await asyncio.sleep(interval)
        finally:
            await runtime.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--down", type=float, nargs="+", default=[5.0, 20.0])
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--give-up", type=float, default=90.0)
    parser.add_argument("--redis", default=None, help="share the breaker through this Redis")
    parser.add_argument("--only", choices=sorted(SETTINGS), default=None)
    args = parser.parse_args()
    labels = [args.only] if args.only else list(SETTINGS)
    print(f"{'breaker':<8} {'down s':>7} {'restart -> first success s':>27} {'failed runs':>12}")
    for label in labels:
        for down in args.down:
            took, failed = await one(label, down, args.interval, args.give_up, args.redis)
            shown = f"{took:.2f}" if took is not None else f"> {args.give_up:g}"
            print(f"{label:<8} {down:>7g} {shown:>27} {failed:>12}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
