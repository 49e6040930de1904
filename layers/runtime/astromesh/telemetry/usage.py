"""The usage ledger: what every finished run spent, kept so spending can be summed later by
day, agent or model, per tenant (``GET /v1/usage``, ``GET /v1/metrics``, ``astromesh cost``).

Why a ledger beside the budget one: the budget ledger (:mod:`astromesh.guardrails.ledger`)
holds running totals under keys that expire at midnight, which is what enforcing a limit
needs and all it can answer. Reporting needs the spending itself: one :class:`UsageEntry`
per ``usage.by_model`` line of each run (provider, model and role, with its calls, tokens and
cost), stamped with the run's tenant, agent, status and start time.

Written once, so sums are exact: every store writes a run's entries when it stores the run
in a terminal state, *replacing* whatever entries that run id had (a retried final save, a
cancel racing the end, the tiered store's durable copy: the same run is never counted
twice). A run's usage already holds every model call it caused, side calls included
(structured-output repair, the conversation summary, a summarising tool:
:mod:`astromesh.runs.usage`); a child run (an agent tool's call, a supervisor's worker, a
chain link) is a run of its own with its own entries, so the parent's and the child's spending
are each counted once. Embeddings are not priced by any provider here, so they add nothing.

A run is dated by its start (``created_at``, UTC): re-recording it never moves it to
another day. A run whose model was never called still gets one entry (no model, zero
tokens), so run counts include it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from astromesh.runs.state import RunState

GroupBy = Literal["day", "agent", "model"]
GROUP_BY: tuple[GroupBy, ...] = ("day", "agent", "model")
Grouping = Literal["day", "agent", "model", "agent_status", "run"]
"""What a store can sum by: the API's :data:`GroupBy`, and for ``/v1/metrics`` agent and
status together (key ``agent<TAB>status``) and each run (key: its id)."""
DEFAULT_DAYS = 30
"""The window a query covers when it names no ``from``: the 30 days ending with ``to``."""


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """One ``usage.by_model`` line of one finished run."""

    run_id: str
    tenant: str
    agent: str
    namespace: str
    status: str
    started_at: datetime
    provider: str = ""
    model: str = ""
    role: str = ""
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    parent_run_id: str | None = None

    @property
    def day(self) -> str:
        return self.started_at.astimezone(UTC).strftime("%Y-%m-%d")


def entries_of(run: RunState) -> list[UsageEntry]:
    """The ledger entries of ``run`` (one per ``by_model`` line; one empty entry without)."""
    started = run.created_at if run.created_at.tzinfo else run.created_at.replace(tzinfo=UTC)
    common = {
        "run_id": run.id,
        "tenant": run.tenant,
        "agent": run.agent,
        "namespace": run.namespace,
        "status": run.status.value,
        "started_at": started.astimezone(UTC),
        "parent_run_id": run.parent_run_id,
    }
    if not run.usage.by_model:
        return [UsageEntry(**common)]  # type: ignore[arg-type]
    return [
        UsageEntry(
            **common,  # type: ignore[arg-type]
            provider=line.provider,
            model=line.model,
            role=line.role,
            calls=line.calls,
            tokens_in=line.tokens_in,
            tokens_out=line.tokens_out,
            cost=line.cost,
        )
        for line in run.usage.by_model
    ]


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Which entries to read: one tenant's runs started in ``[since, until)``."""

    tenant: str
    since: datetime
    until: datetime
    agent: str | None = None
    agents: frozenset[str] | None = None
    """The agents an API key limited to some may see (``None``: every agent)."""

    def matches(self, entry: UsageEntry) -> bool:
        """For stores that filter in Python (memory, Redis); SQL stores filter in the query."""
        return (
            entry.tenant == self.tenant
            and self.since <= entry.started_at < self.until
            and (self.agent is None or entry.agent == self.agent)
            and (self.agents is None or entry.agent in self.agents)
        )


@dataclass(slots=True)
class UsageGroup:
    """Sums of one group (a day, an agent or a model) or of everything."""

    key: str
    runs: int = 0
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    _run_ids: set[str] = field(default_factory=set, repr=False)

    def add(self, entry: UsageEntry) -> None:
        if entry.run_id not in self._run_ids:
            self._run_ids.add(entry.run_id)
            self.runs += 1
        self.calls += entry.calls
        self.tokens_in += entry.tokens_in
        self.tokens_out += entry.tokens_out
        self.cost += entry.cost

    def as_dict(self, name: str) -> dict[str, object]:
        return {
            name: self.key,
            "runs": self.runs,
            "calls": self.calls,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "tokens": self.tokens_in + self.tokens_out,
            "cost_usd": self.cost,
        }


GROUP_FIELDS: dict[Grouping, tuple[str, ...]] = {
    "day": ("day",),
    "agent": ("agent",),
    "model": ("provider", "model"),
    "agent_status": ("agent", "status"),
    "run": ("run_id",),
}
"""The entry fields each grouping's key is made of (SQL stores group by these columns)."""


def group_key(grouping: Grouping, values: Sequence[str]) -> str:
    """A group's key from its :data:`GROUP_FIELDS` values: ``provider/model`` by model,
    ``agent<TAB>status`` by agent and status, the one value otherwise."""
    if grouping == "model":
        return f"{values[0]}/{values[1]}"
    if grouping == "agent_status":
        return f"{values[0]}\t{values[1]}"
    return values[0]


def counts_in(grouping: Grouping, entry: UsageEntry) -> bool:
    """Whether ``entry`` has a group: by model, a run that called no model has none."""
    return grouping != "model" or bool(entry.calls or entry.model)


def summarise(
    entries: Iterable[UsageEntry], group_by: Grouping | None
) -> tuple[UsageGroup, list[UsageGroup]]:
    """The total and, with ``group_by``, one sum per group (sorted by key). A run counts once
    in the total and once in each group it has an entry in."""
    total = UsageGroup("total")
    groups: dict[str, UsageGroup] = {}
    for entry in entries:
        total.add(entry)
        if group_by is None:
            continue
        if counts_in(group_by, entry):
            key = group_key(group_by, [getattr(entry, f) for f in GROUP_FIELDS[group_by]])
            groups.setdefault(key, UsageGroup(key)).add(entry)
    return total, [groups[k] for k in sorted(groups)]


def _instant(value: date | datetime | None, *, end: bool) -> datetime | None:
    """``from`` / ``to`` as a UTC instant: a date is that day's start for ``from`` and the
    next day's start for ``to`` (so ``to`` includes that day); a naive datetime is UTC.
    Instants past what ``datetime`` holds are clamped to its ends."""
    if value is None:
        return None
    try:
        if not isinstance(value, datetime):
            moment = datetime.combine(value, time(), tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        return _LATEST if end or value.year > 1 else _EARLIEST


_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def usage_query(
    tenant: str,
    *,
    agent: str | None = None,
    agents: frozenset[str] | None = None,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
    now: datetime | None = None,
) -> UsageQuery:
    """The query of a request's parameters (``from``, ``to``), by default the
    :data:`DEFAULT_DAYS` days up to now. A window that ends before it starts is empty (not
    an error: it is a well-formed question whose answer is nothing)."""
    end = _instant(until, end=True) or (now or datetime.now(UTC))
    start = _instant(since, end=False)
    if start is None:
        try:
            start = end - timedelta(days=DEFAULT_DAYS)
        except OverflowError:
            start = _EARLIEST
    return UsageQuery(
        tenant=tenant, since=start, until=max(start, end), agent=agent or None, agents=agents
    )


def report(
    query: UsageQuery, total: UsageGroup, groups: Sequence[UsageGroup], group_by: GroupBy | None
) -> dict[str, object]:
    """The ``GET /v1/usage`` body."""
    body: dict[str, object] = {
        "tenant": query.tenant,
        "agent": query.agent,
        "from": query.since.isoformat(),
        "to": query.until.isoformat(),
        "group_by": group_by,
        "total": {k: v for k, v in total.as_dict("key").items() if k != "key"},
        "groups": [g.as_dict(group_by) for g in groups] if group_by else [],
    }
    return body


__all__ = [
    "GROUP_BY",
    "GROUP_FIELDS",
    "GroupBy",
    "Grouping",
    "UsageEntry",
    "UsageGroup",
    "UsageQuery",
    "counts_in",
    "entries_of",
    "group_key",
    "report",
    "summarise",
    "usage_query",
]
