"""``cost_limit`` shared budgets through the runtime: two runtimes (two instances) sharing
the real Redis run concurrent runs against a scripted model server until the agent's daily
budget is reached; the recorded total stays within the documented bound (limit plus one
step per run in flight), later runs fail with code ``cost_limit`` without calling the model,
the day key expires at the next UTC midnight, and session budgets are per session."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from astromesh.guardrails import MemoryBudgetLedger, RedisBudgetLedger
from astromesh.guardrails.ledger import next_utc_midnight, utc_day
from astromesh.runs.state import RunState, RunStatus
from astromesh.runtime import AgentRuntime
from tests.support.agents import PRICED_MODEL, primary, write_agent, write_priced_provider
from tests.support.model_servers import Reply, ScriptedOpenAIServer

LIMIT_MESSAGE = "This request reached the agent's usage limit."
CALL = Reply("ok", tokens_in=40, tokens_out=10)
"""Every scripted call: 50 tokens; priced below at 0.04 + 0.02 = 0.06."""
PER_CALL_TOKENS = 50
PER_CALL_COST = 0.06


def write_priced_agent(agents_dir: Path, url: str, cost_limit: dict[str, object]) -> None:
    write_agent(
        agents_dir,
        model=PRICED_MODEL,
        guardrails={"output": [{"type": "cost_limit", **cost_limit}]},
    )
    write_priced_provider(agents_dir, url)


def day_key(ledger: RedisBudgetLedger, what: str) -> str:
    return ledger.redis_key(f"day:{utc_day()}:{what}")


def redis_env(redis_url: str, redis_prefix: str) -> dict[str, str]:
    return {"ASTROMESH_REDIS_URL": redis_url, "ASTROMESH_BUDGET_PREFIX": f"{redis_prefix}:b"}


async def run_waves(
    runtimes: list[AgentRuntime], per_runtime: int, *, session: str = "s"
) -> list[RunState]:
    """Runs ``per_runtime`` concurrent runs on every runtime, wave after wave, until a whole
    wave is refused; returns every run."""
    done: list[RunState] = []
    for wave in range(50):
        runs = await asyncio.gather(
            *(
                runtime.run("helper", f"wave {wave} run {i}", session_id=f"{session}-{wave}-{i}")
                for runtime in runtimes
                for i in range(per_runtime)
            )
        )
        done.extend(runs)
        if all(r.status is RunStatus.FAILED for r in runs):
            return done
    raise AssertionError("the budget never refused a wave")


async def test_two_instances_share_the_daily_token_budget_in_redis(
    openai_server: ScriptedOpenAIServer, agents_dir, make_runtime, redis_url, redis_prefix
):
    limit, in_flight = 600, 2 * 4  # 4 concurrent runs on each of 2 instances
    write_priced_agent(agents_dir, openai_server.url, {"max_tokens_per_day": limit})
    openai_server.push(*[CALL] * 200)
    env = redis_env(redis_url, redis_prefix)
    instances = [make_runtime(env=env), make_runtime(env=env)]

    runs = await run_waves(instances, per_runtime=4)

    ledgers = [(await rt.get("helper")).guardrails.ledger for rt in instances]
    assert all(isinstance(ledger, RedisBudgetLedger) for ledger in ledgers)
    assert ledgers[0] is not ledgers[1]  # two instances, one Redis
    ledger = ledgers[0]
    spent = await ledger.spent(f"day:{utc_day()}:agent:tests/helper")
    succeeded = [r for r in runs if r.status is RunStatus.SUCCEEDED]
    failed = [r for r in runs if r.status is RunStatus.FAILED]
    # every model call was counted exactly once, and only admitted steps called the model
    assert spent.tokens == len(openai_server.requests) * PER_CALL_TOKENS
    assert len(openai_server.requests) == len(succeeded)
    # the documented bound: limit + one step per run in flight
    assert limit <= spent.tokens < limit + in_flight * PER_CALL_TOKENS
    assert abs(spent.cost - len(succeeded) * PER_CALL_COST) < 1e-9
    for run in failed:
        assert run.error == LIMIT_MESSAGE
        assert [s.data["code"] for s in run.steps if s.type == "stopped"] == ["cost_limit"]
        [guard] = [s.data for s in run.steps if s.type == "guardrail"]
        assert guard["side"] == "between_steps" and "per day for this agent" in guard["reason"]

    # a third instance started later sees the same spent budget
    late = await make_runtime(env=env).run("helper", "anyone there?")
    assert late.status is RunStatus.FAILED and late.error == LIMIT_MESSAGE

    # the day key ends at the next UTC midnight
    ttl = await ledger.client.ttl(day_key(ledger, "agent:tests/helper"))
    left = (next_utc_midnight() - datetime.now(UTC)).total_seconds()
    assert left - 10 <= ttl <= left + 1


async def test_the_daily_cost_budget_holds_across_instances(
    openai_server, agents_dir, make_runtime, redis_url, redis_prefix
):
    limit = 0.3  # five calls
    write_priced_agent(agents_dir, openai_server.url, {"max_cost_per_day": limit})
    openai_server.push(*[CALL] * 200)
    env = redis_env(redis_url, redis_prefix)
    instances = [make_runtime(env=env), make_runtime(env=env)]

    runs = await run_waves(instances, per_runtime=3)

    ledger = (await instances[1].get("helper")).guardrails.ledger
    spent = await ledger.spent(f"day:{utc_day()}:agent:tests/helper")
    assert abs(spent.cost - len(openai_server.requests) * PER_CALL_COST) < 1e-9
    assert limit <= spent.cost < limit + 2 * 3 * PER_CALL_COST
    assert runs[-1].status is RunStatus.FAILED and runs[-1].error == LIMIT_MESSAGE


async def test_session_budgets_are_per_session(
    openai_server, agents_dir, make_runtime, redis_url, redis_prefix
):
    write_priced_agent(agents_dir, openai_server.url, {"max_cost_per_session": 0.15})
    openai_server.push(*[CALL] * 20)
    env = redis_env(redis_url, redis_prefix)
    first, second = make_runtime(env=env), make_runtime(env=env)

    # 0, 0.06, 0.12 are below 0.15: three runs go through, the fourth is refused, on
    # whichever instance it lands
    statuses = []
    for i in range(4):
        run = await (first if i % 2 == 0 else second).run("helper", f"q{i}", session_id="a")
        statuses.append(run.status)
    assert statuses == [RunStatus.SUCCEEDED] * 3 + [RunStatus.FAILED]
    assert run.error == LIMIT_MESSAGE
    [guard] = [s.data for s in run.steps if s.data.get("side") == "between_steps"]
    assert "per session per day" in guard["reason"]
    other = await second.run("helper", "hello", session_id="b")
    assert other.status is RunStatus.SUCCEEDED

    ledger = (await first.get("helper")).guardrails.ledger
    key = day_key(ledger, "session:default:tests/helper:a")
    assert abs(float(await ledger.client.hget(key, "c")) - 3 * PER_CALL_COST) < 1e-9
    ttl = await ledger.client.ttl(key)
    assert 0 < ttl <= (next_utc_midnight() - datetime.now(UTC)).total_seconds() + 1


async def test_the_shared_budget_stops_a_run_between_its_steps(
    openai_server, agents_dir, make_runtime, redis_url, redis_prefix
):
    """A run that reaches the agent's daily budget with its first model call gets no second."""
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=[{"type": "builtin", "name": "calculator"}],
        guardrails={"input": [{"type": "cost_limit", "max_tokens_per_day": 30}]},
    )
    openai_server.push(
        Reply(tool_calls=[("calculator", {"expression": "1+1"})], tokens_in=25, tokens_out=10),
        Reply("2"),
    )
    run = await make_runtime(env=redis_env(redis_url, redis_prefix)).run("helper", "1+1?")
    assert run.status is RunStatus.FAILED and run.error == LIMIT_MESSAGE
    assert len(openai_server.requests) == 1
    assert [s.data["code"] for s in run.steps if s.type == "stopped"] == ["cost_limit"]
    assert run.usage.tokens_in + run.usage.tokens_out == 35


async def test_without_redis_the_runtime_shares_one_memory_ledger(
    openai_server, agents_dir, make_runtime
):
    limit, concurrent = 300, 5
    write_priced_agent(agents_dir, openai_server.url, {"max_tokens_per_day": limit})
    write_agent(
        agents_dir,
        name="other",
        model={"primary": {"provider": "house", "model": "scripted"}},
        guardrails={"output": [{"type": "cost_limit", "max_tokens_per_day": limit}]},
    )
    openai_server.push(*[CALL] * 100)
    runtime = make_runtime()

    runs = await run_waves([runtime], per_runtime=concurrent)

    helper, other = await runtime.get("helper"), await runtime.get("other")
    assert isinstance(helper.guardrails.ledger, MemoryBudgetLedger)
    assert helper.guardrails.ledger is other.guardrails.ledger  # built once per runtime
    spent = await helper.guardrails.ledger.spent(f"day:{utc_day()}:agent:tests/helper")
    assert spent.tokens == len(openai_server.requests) * PER_CALL_TOKENS
    assert limit <= spent.tokens < limit + concurrent * PER_CALL_TOKENS
    assert runs[-1].error == LIMIT_MESSAGE
    # budgets are per agent: the other agent's day is untouched
    assert (await runtime.run("other", "hi")).status is RunStatus.SUCCEEDED
