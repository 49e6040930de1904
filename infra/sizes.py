"""Unzipped size of each function (code + layers) in a synthesized assembly, against 250 MiB.

    cdk synth -c stage=dev && python -m infra.sizes cdk.out

Lambda refuses a function whose code and layers, unzipped, exceed 250 MiB; this reads the
asset folders the templates point at (``aws:asset:path``), so it measures what would deploy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from infra.bundling import LAMBDA_UNZIPPED_LIMIT_MB


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / (1024 * 1024)


def _asset_mb(assembly: Path, resources: dict[str, Any], logical: str) -> float:
    """The asset folder of a function or layer: its ``aws:asset:path`` metadata (the CLI's
    synth), else the staged ``asset.<hash>`` named by its S3 key (``python3 infra/app.py``)."""
    resource = resources[logical]
    raw = resource.get("Metadata", {}).get("aws:asset:path")
    if raw is None:
        code = resource["Properties"].get("Code") or resource["Properties"]["Content"]
        raw = "asset." + str(code["S3Key"]).removesuffix(".zip")
    path = Path(raw)
    return folder_mb(path if path.is_absolute() else assembly / path)


def function_sizes(assembly: Path) -> dict[str, dict[str, float]]:
    """``{stack/function: {"code": MB, "<layer logical id>": MB, ...}}``."""
    sizes: dict[str, dict[str, float]] = {}
    for template_file in sorted(assembly.glob("*.template.json")):
        resources: dict[str, Any] = json.loads(template_file.read_text())["Resources"]
        for logical, resource in resources.items():
            code = resource["Properties"].get("Code", {}) if "Properties" in resource else {}
            if resource["Type"] != "AWS::Lambda::Function" or "S3Key" not in code:
                continue
            parts = {"code": _asset_mb(assembly, resources, logical)}
            for layer in resource["Properties"].get("Layers", []):
                if isinstance(layer, dict) and "Ref" in layer:
                    parts[layer["Ref"]] = _asset_mb(assembly, resources, layer["Ref"])
            sizes[f"{template_file.name.removesuffix('.template.json')}/{logical}"] = parts
    return sizes


def main(argv: list[str]) -> int:
    assembly = Path(argv[1] if len(argv) > 1 else "cdk.out")
    over = 0
    for name, parts in function_sizes(assembly).items():
        total = sum(parts.values())
        over += total > LAMBDA_UNZIPPED_LIMIT_MB
        detail = ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
        flag = "OVER" if total > LAMBDA_UNZIPPED_LIMIT_MB else "ok"
        print(f"{flag:4} {total:7.1f} MiB  {name}  ({detail})")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
