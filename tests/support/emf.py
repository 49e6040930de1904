"""Reading the CloudWatch EMF documents the runtime writes to stdout."""

from __future__ import annotations

import json
from typing import Any

from astromesh.telemetry.metrics import RuntimeMetric


def emf_lines(text: str) -> list[dict[str, Any]]:
    """The EMF documents among the lines of ``text`` (log lines and other output ignored)."""
    return [
        json.loads(line)
        for line in text.splitlines()
        if line.startswith("{") and '"_aws"' in line and '"CloudWatchMetrics"' in line
    ]


def points(documents: list[dict[str, Any]], metric: RuntimeMetric) -> list[dict[str, Any]]:
    """The documents that carry a value of ``metric``."""
    return [d for d in documents if metric.name in d]
