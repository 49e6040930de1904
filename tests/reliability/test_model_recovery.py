"""The model comes back, runs work again within seconds: a real model server on loopback is
killed (SIGKILL) and started again on the same port.

While it is down its circuit opens, with the breaker in this process or shared through the
test's own Redis. The circuit's first trial is due ``first_trial_after`` (2 s by default)
after it opened, not the ``recovery_timeout`` (60 s) it used to wait; a trial that fails
doubles the wait. The run made when the trial is due succeeds. (``bench/recovery.py``
measures the time from the restart to the first successful run.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from astromesh.models.breaker import BreakerState, BreakerStatus
from astromesh.models.strategies import candidate_key
from astromesh.runs.state import RunStatus
from astromesh.runtime import AgentRuntime
from tests.support.agents import primary, write_agent
from tests.support.model_process import ModelProcess
from tests.support.own_redis import OwnRedis


@pytest.fixture
def model() -> Iterator[ModelProcess]:
    with ModelProcess() as process:
        yield process


@pytest.fixture(params=["in-process", "redis"])
async def runtime(
    request: pytest.FixtureRequest, tmp_path: Path, model: ModelProcess
) -> AsyncIterator[AgentRuntime]:
    """The agent on the model process, default breaker settings; shared in Redis or not."""
    write_agent(tmp_path / "agents", model=primary(model.url))
    env = {"ASTROMESH_STATE_PATH": str(tmp_path / "state" / "state.db")}
    redis: OwnRedis | None = None
    if request.param == "redis":
        redis = OwnRedis()
        redis.start()
        env["ASTROMESH_REDIS_URL"] = redis.url
    built = AgentRuntime(tmp_path / "agents", env=env)
    yield built
    await built.close()
    if redis is not None:
        redis.kill()


async def circuit(runtime: AgentRuntime) -> BreakerStatus:
    agent = await runtime.get("helper")
    assert agent.router.breaker is not None
    return await agent.router.breaker.status(candidate_key(agent.router.primary()))


async def open_the_circuit(runtime: AgentRuntime) -> None:
    """Runs fail while the model is down, until its circuit is open."""
    for attempt in range(5):
        run = await runtime.run("helper", f"while down {attempt}")
        assert run.status is RunStatus.FAILED
        if (await circuit(runtime)).state is BreakerState.OPEN:
            return
    raise AssertionError("the circuit did not open")


async def test_a_run_succeeds_when_the_first_trial_is_due_after_the_restart(
    runtime: AgentRuntime, model: ModelProcess
) -> None:
    assert (await runtime.run("helper", "before")).status is RunStatus.SUCCEEDED
    model.kill()
    await open_the_circuit(runtime)
    status = await circuit(runtime)
    due = time.monotonic() + status.retry_in
    assert status.state is BreakerState.OPEN
    assert status.retry_in <= 2.0  # the first trial, not the 60 s recovery_timeout

    model.start()
    await asyncio.sleep(max(0.0, due - time.monotonic()) + 0.05)

    after = await runtime.run("helper", "after the restart")
    assert after.status is RunStatus.SUCCEEDED, after.error
    assert after.answer == "Back again."
    assert (await circuit(runtime)).state is BreakerState.CLOSED


async def test_a_failed_trial_waits_twice_as_long_then_recovers(
    runtime: AgentRuntime, model: ModelProcess
) -> None:
    model.kill()
    await open_the_circuit(runtime)
    await asyncio.sleep((await circuit(runtime)).retry_in + 0.05)
    trial = await runtime.run("helper", "trial while still down")
    assert trial.status is RunStatus.FAILED

    status = await circuit(runtime)
    due = time.monotonic() + status.retry_in
    assert status.state is BreakerState.OPEN and 2.0 < status.retry_in <= 4.0
    model.start()
    await asyncio.sleep(max(0.0, due - time.monotonic()) + 0.05)

    after = await runtime.run("helper", "after the restart")
    assert after.status is RunStatus.SUCCEEDED, after.error
