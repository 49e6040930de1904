"""What reading the usage ledger costs, summed in SQLite against summed in Python.

``GET /v1/usage`` and ``GET /v1/metrics`` ask the ledger for sums over a window. SQLite and
PostgreSQL sum in the database (``UsageStore.summary``: ``GROUP BY``, one row per group); the
other way is to read every line of the window and sum in Python (what the memory and Redis
stores do). This writes ``--runs`` finished runs (two model lines each, five agents) into a
fresh SQLite file, then times both ways for each grouping and prints milliseconds and the
ratio (Python / SQL; above 1: SQL is faster). It also prints the mean time of a finished run's
final save, whose transaction writes its usage lines.

    python bench/usage_ledger.py [--runs 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from _results import record

from astromesh.models.types import Usage
from astromesh.runs.state import RunState, RunStatus, utcnow
from astromesh.stores.sqlite import SQLiteBackend
from astromesh.telemetry.usage import UsageQuery, summarise


async def main(runs: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        backend = SQLiteBackend(Path(folder) / "state.db")
        started = time.perf_counter()
        for index in range(runs):
            run = RunState(agent=f"agent{index % 5}", tenant="acme", query="q")
            for model, tokens in (("m1", 10), ("m2", 3)):
                run.usage.add(
                    provider="house",
                    model=model,
                    role="default",
                    usage=Usage(tokens_in=tokens, tokens_out=tokens // 2),
                    cost=tokens / 1e4,
                )
            run.status = RunStatus.SUCCEEDED
            await backend.runs.create(run)
        write_ms = (time.perf_counter() - started) * 1000 / runs
        now = utcnow()
        query = UsageQuery("acme", now - timedelta(days=30), now + timedelta(minutes=1))
        print(f"{runs} finished runs, {2 * runs} ledger lines (SQLite, one file)")
        print(f"final save with its usage lines: {write_ms:.3f} ms per run")
        print(f"{'group_by':<10} {'python ms':>10} {'sql ms':>8} {'ratio':>6}")
        for grouping in (None, "day", "agent", "model"):
            python_ms, sql_ms = [], []
            for _ in range(repeat):
                t0 = time.perf_counter()
                expected, _ = summarise(await backend.usage.entries(query), grouping)
                t1 = time.perf_counter()
                total, _ = await backend.usage.summary(query, grouping)
                t2 = time.perf_counter()
                assert total.runs == expected.runs == runs
                python_ms.append((t1 - t0) * 1000)
                sql_ms.append((t2 - t1) * 1000)
            p, s = statistics.median(python_ms), statistics.median(sql_ms)
            name = grouping or "total"
            print(f"{name:<10} {p:>10.1f} {s:>8.1f} {p / s:>5.1f}x")
            record("usage_ledger", f"sum by {name}", s, "ms", ratio=s / p)
        await backend.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(main(options.runs, options.repeat))
