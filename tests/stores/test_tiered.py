"""Redis hot, PostgreSQL durable: finished runs survive the hot tier's expiry."""

from __future__ import annotations

import pytest

from astromesh.errors import NotFoundError
from astromesh.models.types import Message
from astromesh.runs.state import ActionResult, RunState, RunStatus
from astromesh.stores.factory import open_backend
from astromesh.stores.tiered import TieredBackend


@pytest.fixture
async def tiered(redis_url, redis_prefix, postgres_schema):
    backend = open_backend(
        "redis", redis_url=redis_url, redis_prefix=redis_prefix, postgres_dsn=postgres_schema
    )
    assert isinstance(backend, TieredBackend)
    await backend.open()
    yield backend
    await backend.close()


async def test_running_runs_stay_hot_and_finished_ones_are_kept_durably(tiered):
    run = await tiered.runs.create(RunState(agent="a", session_id="s", query="q"))
    run.iteration = 1
    await tiered.runs.save(run)
    with pytest.raises(NotFoundError):
        await tiered.durable_backend.runs.get(run.id)  # nothing durable while it runs

    run.status, run.answer = RunStatus.SUCCEEDED, "done"
    await tiered.runs.save(run)
    durable = await tiered.durable_backend.runs.get(run.id)
    assert (durable.status, durable.answer, durable.iteration) == (RunStatus.SUCCEEDED, "done", 1)

    # the hot copy expires (TTL): the run is still served, from PostgreSQL
    await tiered.hot_backend.client.delete(tiered.hot_backend.key("run", run.id))
    assert (await tiered.runs.get(run.id)).answer == "done"


async def test_a_run_finalized_twice_updates_its_durable_copy(tiered):
    run = await tiered.runs.create(RunState(agent="a", query="q"))
    run.status, run.error = RunStatus.CANCELLED, "cancelled by request"
    await tiered.runs.save(run)
    run.status, run.error, run.answer = RunStatus.SUCCEEDED, None, "finished anyway"
    await tiered.runs.save(run)
    durable = await tiered.durable_backend.runs.get(run.id)
    assert (durable.status, durable.answer) == (RunStatus.SUCCEEDED, "finished anyway")


async def test_list_runs_merges_both_tiers_newest_first(tiered):
    old = await tiered.runs.create(RunState(agent="a", query="old"))
    old.status = RunStatus.SUCCEEDED
    await tiered.runs.save(old)
    await tiered.hot_backend.client.delete(tiered.hot_backend.key("run", old.id))
    new = await tiered.runs.create(RunState(agent="a", query="new"))
    assert [r.id for r in await tiered.runs.list_runs(agent="a")] == [new.id, old.id]


async def test_results_and_history_use_the_hot_tier(tiered):
    await tiered.runs.put_result("r", ActionResult(call_id="c", name="t", ok=True, content="x"))
    assert (await tiered.runs.get_results("r", ["c"]))["c"].content == "x"
    assert tiered.history is tiered.hot_backend.history


async def forget_everything_hot(tiered) -> None:
    """What a Redis without persistence holds after a restart: nothing of ours."""
    client = tiered.hot_backend.client
    keys = [key async for key in client.scan_iter(match=tiered.hot_backend.key("*"))]
    if keys:
        await client.delete(*keys)


async def test_a_running_runs_checkpoint_is_the_hot_tiers_own_write(tiered):
    run = await tiered.runs.create(RunState(agent="a", query="q"))
    run.messages.append(Message.user("step one"))
    result = ActionResult(call_id="c1", name="t", ok=True, content="full result")

    pending = await tiered.runs.begin_checkpoint(run, [result])
    await pending.wait()

    assert run.version == 2
    hot = await tiered.hot_backend.runs.get(run.id)
    assert [m.content for m in hot.messages][-1] == "step one"
    assert (await tiered.runs.get_results(run.id, ["c1"]))["c1"].content == "full result"
    with pytest.raises(NotFoundError):
        await tiered.durable_backend.runs.get(run.id)  # still nothing durable while it runs


async def test_a_running_run_a_restarted_hot_tier_lost_is_put_back_at_its_checkpoint(tiered):
    run = await tiered.runs.create(RunState(agent="a", query="q"))
    run.messages.append(Message.user("before the restart"))
    await tiered.runs.checkpoint(run)
    await forget_everything_hot(tiered)

    run.messages.append(Message.user("after the restart"))
    await (await tiered.runs.begin_checkpoint(run)).wait()

    assert run.version == 1  # created again
    back = await tiered.runs.get(run.id)
    assert [m.content for m in back.messages][-2:] == ["before the restart", "after the restart"]
    run.messages.append(Message.user("and on"))
    await tiered.runs.checkpoint(run)  # appends from there
    assert [m.content for m in (await tiered.runs.get(run.id)).messages][-1] == "and on"


async def test_a_finished_runs_checkpoint_is_kept_durably_with_its_results(tiered):
    run = await tiered.runs.create(RunState(agent="a", query="q"))
    run.status, run.answer = RunStatus.SUCCEEDED, "done"
    result = ActionResult(call_id="c1", name="t", ok=True, content="x")

    await (await tiered.runs.begin_checkpoint(run, [result])).wait()

    assert (await tiered.durable_backend.runs.get(run.id)).answer == "done"
    assert (await tiered.runs.get_results(run.id, ["c1"]))["c1"].content == "x"
