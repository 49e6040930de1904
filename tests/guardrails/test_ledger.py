"""Budget ledgers (memory and the real Redis) and the shared budgets of ``cost_limit``:
atomic reserve/settle, refusal once a budget is reached, expiry at the end of the UTC day,
the overshoot bound under concurrency, and the config that turns them on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from astromesh.config.guardrails import CostLimit, GuardrailsSpec
from astromesh.guardrails import (
    GuardrailChain,
    MemoryBudgetLedger,
    RedisBudgetLedger,
    Side,
    build_guardrails,
    build_ledger,
    reserve_budget,
    settle_budget,
)
from astromesh.guardrails.cost import CostGuardrail
from astromesh.guardrails.ledger import Budget, BudgetLedger, Spend, next_utc_midnight, utc_day
from astromesh.models.types import Message
from astromesh.runs.state import RunState

TOKENS = Budget(key="day:test:agent:tests/helper", label="per day", max_tokens=100)
COST = Budget(key="day:test:session:s1", label="per session per day", max_cost=0.5)


@pytest.fixture(params=["memory", "redis"])
async def ledger(request, redis_url: str, redis_prefix: str) -> AsyncIterator[BudgetLedger]:
    built = (
        MemoryBudgetLedger()
        if request.param == "memory"
        else RedisBudgetLedger(redis_url, prefix=redis_prefix)
    )
    yield built
    await built.aclose()


async def test_an_admitted_reservation_is_replaced_by_the_real_usage(ledger):
    held = await ledger.reserve([TOKENS, COST], Spend(10, 0.01))
    assert held.admitted
    assert await ledger.spent(TOKENS.key) == Spend(10, 0.01)
    await ledger.settle(held, Spend(42, 0.2))
    await ledger.settle(held, Spend(42, 0.2))  # settling twice charges once
    assert await ledger.spent(TOKENS.key) == Spend(42, pytest.approx(0.2))
    assert (await ledger.spent(COST.key)).cost == pytest.approx(0.2)


async def test_a_reached_budget_refuses_and_adds_nothing(ledger):
    await ledger.settle(await ledger.reserve([TOKENS, COST], Spend()), Spend(100, 0.1))
    refused = await ledger.reserve([COST, TOKENS], Spend(5, 0.01))
    assert not refused.admitted
    assert refused.refusal.budget == TOKENS and refused.refusal.measure == "tokens"
    assert refused.refusal.reason() == "used 100 tokens, limit 100 per day"
    assert await ledger.spent(TOKENS.key) == Spend(100, pytest.approx(0.1))
    await ledger.settle(refused, Spend(999, 9.0))  # a refused reservation settles nothing
    assert (await ledger.spent(COST.key)).cost == pytest.approx(0.1)

    await ledger.settle(await ledger.reserve([COST], Spend()), Spend(0, 0.4))
    by_cost = await ledger.reserve([COST], Spend())
    assert by_cost.refusal.measure == "cost"
    assert by_cost.refusal.reason() == "cost 0.500000, limit 0.5 per session per day"


async def test_a_day_that_is_over_holds_nothing(ledger):
    """Usage settled into yesterday (a step admitted before midnight, settled after) does
    not count today and does not bring yesterday's key back."""
    yesterday = datetime.now(UTC) - timedelta(days=1)
    held = await ledger.reserve([TOKENS], Spend(7, 0.0), now=yesterday)
    await ledger.settle(held, Spend(50, 0.0))
    assert await ledger.spent(TOKENS.key) == Spend()


async def test_redis_day_keys_expire_at_the_next_utc_midnight(redis_url, redis_prefix):
    ledger = RedisBudgetLedger(redis_url, prefix=redis_prefix)
    try:
        await ledger.reserve([TOKENS], Spend(1, 0.0))
        ttl = await ledger.client.ttl(ledger.redis_key(TOKENS.key))
        left = (next_utc_midnight() - datetime.now(UTC)).total_seconds()
        assert left - 5 <= ttl <= left + 1
    finally:
        await ledger.aclose()


def test_next_utc_midnight_and_day_are_utc():
    late = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    assert next_utc_midnight(late) == datetime(2026, 3, 2, tzinfo=UTC)
    tokyo = late.astimezone(ZoneInfo("Asia/Tokyo"))  # 08:30 on 2 March
    assert utc_day(tokyo) == "2026-03-01"


async def test_concurrent_steps_of_two_instances_stay_within_the_bound(redis_url, redis_prefix):
    """Two ledgers (two processes' clients) on one Redis; 8 runs at a time, each step
    reserving a small estimate and settling 30 tokens, until the budget refuses every run.
    The total is below limit + 8 x 30 (one step in flight per run) and never lost an update."""
    instances = [RedisBudgetLedger(redis_url, prefix=redis_prefix) for _ in range(2)]
    budget = Budget(key="day:test:agent:bound", label="per day", max_tokens=500)
    admitted = 0

    async def run_steps(ledger: BudgetLedger) -> None:
        nonlocal admitted
        while True:
            held = await ledger.reserve([budget], Spend(3, 0.0))
            if not held.admitted:
                return
            admitted += 1
            await asyncio.sleep(0.005)  # the model call
            await ledger.settle(held, Spend(30, 0.0))

    try:
        await asyncio.gather(*(run_steps(instances[i % 2]) for i in range(8)))
        total = (await instances[0].spent(budget.key)).tokens
    finally:
        for ledger in instances:
            await ledger.aclose()
    assert total == admitted * 30  # every settle counted exactly once
    assert 500 <= total < 500 + 8 * 30


async def test_the_memory_ledger_is_atomic_under_concurrent_steps():
    ledger = MemoryBudgetLedger()
    budget = Budget(key="k", label="per day", max_cost=1.0)

    async def step() -> bool:
        held = await ledger.reserve([budget], Spend(0, 0.01))
        await asyncio.sleep(0)
        await ledger.settle(held, Spend(10, 0.1))
        return held.admitted

    admitted = sum(await asyncio.gather(*(step() for _ in range(50))))
    spent = await ledger.spent("k")
    assert spent.cost == pytest.approx(admitted * 0.1)
    assert 1.0 <= spent.cost < 1.0 + 50 * 0.1


def test_build_ledger_picks_redis_when_a_url_is_configured(redis_url):
    assert isinstance(build_ledger(None), MemoryBudgetLedger)
    built = build_ledger(redis_url, prefix="p")
    assert isinstance(built, RedisBudgetLedger) and built.prefix == "p"


# -- cost_limit: config and budgets of a run --------------------------------------------------


def test_shared_budgets_are_optional_additive_and_validated():
    only_day = CostLimit.model_validate({"type": "cost_limit", "max_tokens_per_day": 1000})
    assert only_day.has_shared_budget and only_day.max_cost_per_run is None
    old = CostLimit.model_validate({"type": "cost_limit", "max_cost_per_run": 0.5})
    assert not old.has_shared_budget
    for field in ("max_cost_per_session", "max_cost_per_day", "max_tokens_per_day"):
        with pytest.raises(ValidationError, match="greater than 0"):
            CostLimit.model_validate({"type": "cost_limit", field: 0})
    with pytest.raises(ValidationError, match="or a shared budget"):
        CostLimit.model_validate({"type": "cost_limit"})


def run_of(session: str = "s1", tenant: str = "default") -> RunState:
    return RunState(agent="helper", namespace="tests", session_id=session, tenant=tenant, query="q")


def test_a_run_counts_against_its_agents_day_and_its_sessions_day():
    guard = CostGuardrail(max_cost_per_session=0.1, max_cost_per_day=1.0, max_tokens_per_day=9)
    when = datetime(2026, 5, 1, 12, tzinfo=UTC)
    budgets = guard.budgets(run_of("s1", "acme"), when)
    assert [(b.key, b.max_tokens, b.max_cost) for b in budgets] == [
        ("day:2026-05-01:agent:tests/helper", 9, 1.0),
        ("day:2026-05-01:session:acme:tests/helper:s1", None, 0.1),
    ]
    assert CostGuardrail(max_tokens_per_turn=5).budgets(run_of(), when) == []


def test_two_rules_on_one_budget_keep_the_tighter_limits():
    chain = build_guardrails(
        GuardrailsSpec.model_validate(
            {
                "input": [{"type": "cost_limit", "max_tokens_per_day": 100, "max_cost_per_day": 2}],
                "output": [
                    {"type": "cost_limit", "max_tokens_per_day": 300, "max_cost_per_day": 1}
                ],
            }
        )
    )
    [budget] = chain.shared_budgets(run_of())
    assert (budget.max_tokens, budget.max_cost) == (100, 1)
    assert isinstance(chain.ledger, MemoryBudgetLedger)  # none given: this process only
    assert GuardrailChain().ledger is None


async def test_reserve_budget_refuses_with_a_recorded_user_safe_verdict():
    chain = build_guardrails(
        GuardrailsSpec.model_validate(
            {"output": [{"type": "cost_limit", "max_tokens_per_day": 10}]}
        ),
        ledger=MemoryBudgetLedger(),
    )
    first = run_of()
    first.query = "x" * 40
    first.messages = [Message.user(first.query)]
    held, refused = await reserve_budget(first, chain)
    assert refused is None and held.estimate == Spend(10, 0.0)
    assert (await chain.ledger.spent(held.budgets[0].key)).tokens == 10  # seen by others
    await settle_budget(first, chain, held, Spend())  # the step spent nothing after all
    assert (await chain.ledger.spent(held.budgets[0].key)).tokens == 0

    first.usage.tokens_in = 12
    held, _ = await reserve_budget(first, chain)
    await settle_budget(first, chain, held, Spend())
    second = run_of("s2")
    held, refused = await reserve_budget(second, chain)
    assert held is None
    assert refused.user_message(Side.OUTPUT) == "This request reached the agent's usage limit."
    [step] = [s.data for s in second.steps if s.type == "guardrail"]
    assert step == {
        "name": "cost_limit",
        "side": "between_steps",
        "action": "block",
        "reason": "used 12 tokens, limit 10 per day for this agent",
    }


async def test_an_unreachable_ledger_fails_open(closed_port_url):
    port = closed_port_url.rsplit(":", 1)[1]
    ledger = RedisBudgetLedger(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5)
    chain = build_guardrails(
        GuardrailsSpec.model_validate(
            {"output": [{"type": "cost_limit", "max_tokens_per_day": 10}]}
        ),
        ledger=ledger,
    )
    run = run_of()
    assert await reserve_budget(run, chain) == (None, None)
    await ledger.aclose()
