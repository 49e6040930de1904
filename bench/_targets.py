"""Issue 18's targets, checked against one ``python -m bench`` run.

Each target reads the figures benchmarks recorded (:mod:`_results`) or, for benchmarks that
only print, the line of their output that holds the figure. A target whose figure is in
neither says so (``NOT MEASURED``) rather than guessing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Rows = list[dict[str, Any]]
Outputs = dict[str, str]


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str  # PASS, MISS, NOT MEASURED
    figure: str


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    check: Callable[[Rows, Outputs], Verdict]


def _none(why: str) -> Verdict:
    return Verdict("NOT MEASURED", why)


def _ratio_target(bench: str, prefix: str, limit: float, what: str) -> Callable[..., Verdict]:
    def check(rows: Rows, outputs: Outputs) -> Verdict:
        found = [r for r in rows if r["bench"] == bench and r["measure"].startswith(prefix)]
        found = [r for r in found if r.get("ratio") is not None]
        if not found:
            return _none(f"bench/{bench}.py recorded no '{prefix}' ratio ({what})")
        worst = max(found, key=lambda r: r["ratio"])
        status = "PASS" if worst["ratio"] <= limit else "MISS"
        return Verdict(status, f"{worst['ratio']:.2f}x ({worst['measure']}); limit {limit}x")

    return check


_COLD_ROW = re.compile(
    r"^\s+(\S+)\s+\d+ ms\s+\S+ ms\s+([\d.]+)x (fastapi\+mangum|powertools)\s+<= ([\d.]+)x",
    re.M,
)


def _cold(reference: str, limit: float) -> Callable[[Rows, Outputs], Verdict]:
    """The worst handler's cold-start ratio to ``reference`` in bench/ingress.py's table
    (the rows it gives a target; ingestion, which carries the ML stack, has none)."""

    def check(rows: Rows, outputs: Outputs) -> Verdict:
        found = [
            (name, float(ratio))
            for name, ratio, ref, _ in _COLD_ROW.findall(outputs.get("ingress", ""))
            if ref == reference
        ]
        if not found:
            return _none(f"no cold-start rows against {reference} in bench/ingress.py's output")
        name, ratio = max(found, key=lambda row: row[1])
        status = "PASS" if ratio <= limit else "MISS"
        return Verdict(status, f"{ratio:.2f}x ({name}, the worst of {len(found)}); limit {limit}x")

    return check


def _sizes(rows: Rows, outputs: Outputs) -> Verdict:
    found = [r for r in rows if r["bench"] == "sizes"]
    if not found:
        return _none("bench/sizes.py recorded no function (it synthesizes the CDK app)")
    worst = max(found, key=lambda r: r["value"])
    over = sum(1 for r in found if r["value"] > 150)
    status = "PASS" if not over else "MISS"
    name = worst["measure"].removeprefix("function ")
    return Verdict(
        status, f"largest {worst['value']:.1f} MiB ({name}); {over} of {len(found)} over 150"
    )


def _steps_sqlite(rows: Rows, outputs: Outputs) -> Verdict:
    text = outputs.get("steps", "")
    match = re.search(r"runtime, sqlite store\s+[\d.]+\s+[-\d.]+\s+([\d.]+)", text)
    if match is None:
        return _none("no 'runtime, sqlite store' row in bench/steps.py's output")
    ratio = float(match.group(1))
    return Verdict("PASS" if ratio <= 2 else "MISS", f"{ratio:.1f}x the bare loop; limit 2x")


def _transitions(rows: Rows, outputs: Outputs) -> Verdict:
    counts: dict[tuple[int, int], float] = {}
    for r in rows:
        match = re.match(r"transitions, (\d+) iterations x (\d+) tool calls", r["measure"])
        if r["bench"] == "cost_model" and match:
            counts[int(match.group(1)), int(match.group(2))] = r["value"]
    worst: tuple[float, int] | None = None
    for (its, tools), value in counts.items():
        fewer = [i for i, t in counts if t == tools and i < its]
        if fewer:
            low = max(fewer)
            per = (value - counts[low, tools]) / (its - low)
            if worst is None or per - (3 + tools) > worst[0] - (3 + worst[1]):
                worst = (per, tools)
    if worst is None:
        return _none("bench/cost_model.py recorded no two run lengths to difference")
    per, tools = worst
    status = "PASS" if per <= 3 + tools else "MISS"
    return Verdict(status, f"{per:.1f} per iteration with {tools} tool call(s); limit {3 + tools}")


_REDIS_ROW = re.compile(
    r"^\s+redis breaker\s+(\S+)\s+[\d.]+ us/call\s+overhead\s+([-\d.]+) us"
    r"(?:\s+breaker\s+([-\d.]+) us)?",
    re.M | re.I,
)


def _breaker(rows: Rows, outputs: Outputs) -> Verdict:
    """What the Redis breaker adds per call (bench/router.py's ``breaker`` column, against
    the same strategy with no breaker; the whole router overhead where it has no such
    column), the worst strategy."""
    found = _REDIS_ROW.findall(outputs.get("router", ""))
    if not found:
        return _none("no Redis breaker rows in bench/router.py's output (--redis)")
    added = [(name, float(own) if own else float(overhead)) for name, overhead, own in found]
    what = "added by the breaker" if all(own for _, _, own in found) else "router overhead"
    name, worst = max(added, key=lambda row: row[1])
    status = "PASS" if worst <= 100 else "MISS"
    return Verdict(status, f"{worst:.0f} us per model call {what} ({name}, worst); limit 100 us")


def _faiss(rows: Rows, outputs: Outputs) -> Verdict:
    found = [
        r
        for r in rows
        if r["bench"] == "rag"
        and r["measure"].startswith("clustered")
        and "| faiss" in r["measure"]
        and "1 thread" in r["measure"]
        and "ANN off" not in r["measure"]
    ]
    if not found:
        return _none("bench/rag.py recorded no FAISS row on the clustered set")
    r = max(found, key=lambda r: int(re.sub(r"\D", "", r["measure"].split()[1]) or 0))
    size = r["measure"].split(" | ")[0]
    ok = r["recall"] >= 0.95 and r["value"] < 1.0
    note = "" if "100k" in size else " (quick size; --full measures 100k)"
    return Verdict(
        "PASS" if ok else "MISS",
        f"{size}: recall@10 {r['recall']:.3f}, p50 {r['value']:.2f} ms; limits 0.95, 1 ms{note}",
    )


TARGETS = [
    Target("cold start: api <= 1.5x a minimal FastAPI+Mangum app", _cold("fastapi+mangum", 1.5)),
    Target(
        "cold start: light handlers <= 2.5x a minimal Powertools resolver",
        _cold("powertools", 2.5),
    ),
    Target(
        "REST per-iteration <= 2x the HTTP floor",
        _ratio_target("peers", "per iteration, Astromesh REST", 2.0, "peers"),
    ),
    Target("bench/steps.py SQLite <= 2x the bare loop", _steps_sqlite),
    Target("Step Functions: <= 3 + n transitions per iteration", _transitions),
    Target("every function <= 150 MiB unzipped (code + layers)", _sizes),
    Target("FAISS ANN: recall@10 >= 0.95, p50 < 1 ms at 100k x 384", _faiss),
    Target("breaker: <= 100 us per model call for the shared circuit", _breaker),
]
