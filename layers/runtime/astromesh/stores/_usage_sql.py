"""The usage ledger's sums in SQL, shared by SQLite and PostgreSQL (which differ only in the
parameter mark, the day of a start time, and how a time is written): ``GET /v1/usage`` and
``GET /v1/metrics`` cost one row per group, whatever the number of runs in the window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from astromesh.telemetry.usage import (
    GROUP_FIELDS,
    Grouping,
    UsageGroup,
    UsageQuery,
    group_key,
)

_SUMS = "COUNT(DISTINCT run_id), SUM(calls), SUM(tokens_in), SUM(tokens_out), SUM(cost)"


@dataclass(frozen=True, slots=True)
class Dialect:
    mark: str
    """``?`` or ``%s``."""
    day: str
    """The UTC day (``YYYY-MM-DD``) of ``started_at``."""


SQLITE = Dialect("?", "substr(started_at, 1, 10)")
POSTGRES = Dialect("%s", "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')")


ENTRY_COLUMNS = (
    "run_id, tenant, agent, namespace, status, started_at, provider, model, role, calls,"
    " tokens_in, tokens_out, cost, parent_run_id"
)
"""The columns of a :class:`~astromesh.telemetry.usage.UsageEntry`, in its field order."""


def where_clause(
    dialect: Dialect, query: UsageQuery, started: Any, ended: Any
) -> tuple[str, list[Any]]:
    """The ``WHERE`` condition (without the keyword) and parameters of ``query``;
    ``started`` / ``ended`` are the window's ends as the dialect stores times."""
    m = dialect.mark
    where = f"tenant = {m} AND started_at >= {m} AND started_at < {m}"
    params: list[Any] = [query.tenant, started, ended]
    if query.agent is not None:
        where += f" AND agent = {m}"
        params.append(query.agent)
    if query.agents is not None:
        if not query.agents:
            where += " AND 1 = 0"
        else:
            where += f" AND agent IN ({', '.join(m for _ in query.agents)})"
            params.extend(sorted(query.agents))
    return where, params


def summary_queries(
    dialect: Dialect, query: UsageQuery, group_by: Grouping | None, started: Any, ended: Any
) -> list[tuple[str, list[Any]]]:
    """``(sql, params)`` of the total, then of the groups when ``group_by`` is given."""
    where, params = where_clause(dialect, query, started, ended)
    found = [(f"SELECT {_SUMS} FROM usage_lines WHERE {where}", params)]
    if group_by is not None:
        columns = ", ".join(
            dialect.day if column == "day" else column for column in GROUP_FIELDS[group_by]
        )
        having = " AND (calls > 0 OR model <> '')" if group_by == "model" else ""
        found.append(
            (
                f"SELECT {columns}, {_SUMS} FROM usage_lines WHERE {where}{having}"
                f" GROUP BY {columns}",
                params,
            )
        )
    return found


def _sums(key: str, row: Sequence[Any]) -> UsageGroup:
    runs, calls, tokens_in, tokens_out, cost = row
    return UsageGroup(
        key,
        runs=int(runs or 0),
        calls=int(calls or 0),
        tokens_in=int(tokens_in or 0),
        tokens_out=int(tokens_out or 0),
        cost=float(cost or 0.0),
    )


def summary_of(
    group_by: Grouping | None, rows: Sequence[Sequence[Sequence[Any]]]
) -> tuple[UsageGroup, list[UsageGroup]]:
    """The total and groups from the rows of :func:`summary_queries`' statements."""
    total = _sums("total", rows[0][0])
    if group_by is None:
        return total, []
    width = len(GROUP_FIELDS[group_by])
    groups = [_sums(group_key(group_by, [str(v) for v in r[:width]]), r[width:]) for r in rows[1]]
    return total, sorted(groups, key=lambda g: g.key)


__all__ = [
    "ENTRY_COLUMNS",
    "POSTGRES",
    "SQLITE",
    "Dialect",
    "summary_of",
    "summary_queries",
    "where_clause",
]
