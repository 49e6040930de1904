"""``GET /v1/usage`` and ``GET /v1/metrics``: what a tenant's runs spent, from the usage
ledger (:mod:`astromesh.telemetry.usage`).

Usage is tenant data: both read the caller's tenant only (an admin's ``?tenant=`` names
another; anyone else naming one gets 403 from :func:`~astromesh.channels.access.acting_as`),
and a key limited to some agents sees those agents' spending only. Bad ``from``, ``to`` or
``group_by`` are a 422 naming the parameter.

``/v1/metrics`` is upstream's JSON shape, ``{"counters": {name: number}, "histograms":
{name: {count, sum, avg, min, max}}}``, which upstream's ``astromeshctl metrics`` and
``astromeshctl cost`` print (cost counters as dollars, cost histograms as count, total and
average). Upstream filled it from in-process counters; here it is the ledger's window (the
last 30 days unless ``from`` / ``to`` say otherwise), so every instance answers the same.
Prometheus' own exposition of the live counters stays at ``GET /metrics``.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, WithJsonSchema

from astromesh.auth import ALL_AGENTS, Principal
from astromesh.channels.access import require_agent
from astromesh.channels.openapi import AUTHENTICATED, errors
from astromesh.channels.security import CurrentPrincipal, ServicesDep
from astromesh.stores.base import UsageStore
from astromesh.telemetry.usage import GroupBy, UsageGroup, UsageQuery, report, usage_query

router = APIRouter(tags=["observability"])


class UsageSums(BaseModel):
    """What runs spent: their count, model calls, tokens and US dollars."""

    runs: int
    calls: int
    tokens_in: int
    tokens_out: int
    tokens: int
    cost_usd: float


class UsageGroupSums(UsageSums):
    """One group's sums, with the group's key under the ``group_by`` name (``day``,
    ``agent`` or ``model``)."""

    model_config = ConfigDict(extra="allow")


class UsageReport(BaseModel):
    """``GET /v1/usage``: the window's total and, with ``group_by``, one sum per group."""

    model_config = ConfigDict(populate_by_name=True)

    tenant: str
    agent: str | None
    since: str = Field(alias="from")
    to: str
    group_by: GroupBy | None
    total: UsageSums
    groups: list[UsageGroupSums]


class HistogramStats(BaseModel):
    count: int
    sum: float
    avg: float
    min: float
    max: float


class UpstreamMetrics(BaseModel):
    """Upstream's ``/v1/metrics/`` body (cost counters are floats: its client prints a float
    counter whose name holds ``cost`` as dollars)."""

    counters: dict[str, int | float]
    histograms: dict[str, HistogramStats]


_DATETIME = TypeAdapter(datetime)
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _moment(value: object) -> object:
    """A date (``YYYY-MM-DD``) or an RFC 3339 / ISO 8601 datetime; one error naming the
    parameter otherwise (a ``date | datetime`` union would report one error per type)."""
    if not isinstance(value, str):
        return value
    try:
        if not _ISO_DAY.match(value):  # pydantic would read "0.5" as a Unix time
            raise ValueError(value)
        return date.fromisoformat(value) if len(value) == 10 else _DATETIME.validate_python(value)
    except ValueError:
        raise ValueError("not a date (YYYY-MM-DD) or an ISO 8601 datetime") from None


_MOMENT_SCHEMA = WithJsonSchema(
    {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
)
AgentParam = Annotated[str | None, Query(description="Only this agent's runs")]
FromParam = Annotated[
    date | datetime | None,
    BeforeValidator(_moment),
    _MOMENT_SCHEMA,
    Query(
        alias="from",
        description="Runs started at or after: a date (YYYY-MM-DD) or an ISO 8601 datetime"
        " (UTC unless it says); default 30 days before `to`",
    ),
]
ToParam = Annotated[
    date | datetime | None,
    BeforeValidator(_moment),
    _MOMENT_SCHEMA,
    Query(
        alias="to",
        description="Runs started before: a datetime, or a date (that whole day included);"
        " default now",
    ),
]


async def _ledger(
    services: ServicesDep,
    principal: Principal,
    agent: str | None,
    since: date | datetime | None,
    until: date | datetime | None,
) -> tuple[UsageQuery, UsageStore]:
    """The caller's tenant's query (only the agents its key may use) and the ledger."""
    if agent:
        require_agent(principal, agent)
    agents = None if ALL_AGENTS in principal.agents else frozenset(principal.agents)
    query = usage_query(principal.tenant, agent=agent, agents=agents, since=since, until=until)
    return query, (await services.runtime.state()).usage


@router.get("/v1/usage", response_model=UsageReport, responses=errors(AUTHENTICATED))
async def usage(
    principal: CurrentPrincipal,
    services: ServicesDep,
    agent: AgentParam = None,
    since: FromParam = None,
    until: ToParam = None,
    group_by: Annotated[
        GroupBy | None, Query(description="`day`, `agent` or `model`: one sum per group")
    ] = None,
) -> dict[str, Any]:
    """Tokens in and out, USD and run counts of the tenant's finished runs (child runs and
    side calls included), in total and per day, agent or model."""
    query, ledger = await _ledger(services, principal, agent, since, until)
    total, groups = await ledger.summary(query, group_by)
    return report(query, total, groups, group_by)


@router.get("/v1/metrics", response_model=UpstreamMetrics, responses=errors(AUTHENTICATED))
async def metrics(
    principal: CurrentPrincipal,
    services: ServicesDep,
    agent: AgentParam = None,
    since: FromParam = None,
    until: ToParam = None,
) -> dict[str, Any]:
    """Upstream's aggregated metrics (``counters``, ``histograms``) over the usage ledger."""
    query, ledger = await _ledger(services, principal, agent, since, until)
    total, _ = await ledger.summary(query, None)
    _, labelled = await ledger.summary(query, "agent_status")
    _, runs = await ledger.summary(query, "run")
    return upstream_metrics(total, labelled, runs)


def upstream_metrics(
    total: UsageGroup, by_agent_status: list[UsageGroup], by_run: list[UsageGroup]
) -> dict[str, Any]:
    """Counters (runs, calls, tokens, cost: in total and per agent and status as
    ``name{agent="a",status="s"}``) and per-run histograms (cost, tokens)."""
    counters: dict[str, int | float] = {
        "runs_total": total.runs,
        "model_calls_total": total.calls,
        "tokens_input_total": total.tokens_in,
        "tokens_output_total": total.tokens_out,
        "cost_usd_total": float(total.cost),
    }
    for group in by_agent_status:
        agent, _, status = group.key.rpartition("\t")
        labels = f'{{agent="{agent}",status="{status}"}}'
        counters[f"runs_total{labels}"] = group.runs
        counters[f"tokens_total{labels}"] = group.tokens_in + group.tokens_out
        counters[f"cost_usd_total{labels}"] = float(group.cost)
    costs = [run.cost for run in by_run]
    tokens = [float(run.tokens_in + run.tokens_out) for run in by_run]
    histograms = {
        name: _stats(values)
        for name, values in (("run_cost_usd", costs), ("run_tokens", tokens))
        if values
    }
    return {"counters": counters, "histograms": histograms}


def _stats(values: list[float]) -> dict[str, float | int]:
    return {
        "count": len(values),
        "sum": sum(values),
        "avg": sum(values) / len(values),
        "min": min(values),
        "max": max(values),
    }


__all__ = ["router", "upstream_metrics"]
