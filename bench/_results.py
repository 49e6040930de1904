"""Figures a benchmark hands to ``python -m bench``, beside what it prints.

``python -m bench`` runs each benchmark in its own interpreter with ``ASTROMESH_BENCH_RESULTS``
naming a file; :func:`record` appends one JSON line per figure to it, which the runner reads
back to check the issue's targets. Run alone, a benchmark only prints (the variable is unset
and :func:`record` does nothing).
"""

from __future__ import annotations

import json
import os

ENV = "ASTROMESH_BENCH_RESULTS"


def record(
    bench: str,
    measure: str,
    value: float,
    unit: str,
    *,
    ratio: float | None = None,
    spread: tuple[float, float] | None = None,
    **extra: float | str,
) -> None:
    """Append one figure (``ratio``: to the benchmark's baseline in the same run;
    ``spread``: its p25-p75; ``extra``: other fields, such as a recall) for the runner, when
    it asked for them."""
    path = os.environ.get(ENV)
    if not path:
        return
    row: dict[str, object] = {
        "bench": bench,
        "measure": measure,
        "value": value,
        "unit": unit,
        "ratio": ratio,
        **extra,
    }
    if spread is not None:
        row["spread"] = list(spread)
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
