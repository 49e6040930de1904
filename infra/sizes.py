"""Unzipped size of each function (code + layers) in a synthesized assembly, against 250 MiB.

    cdk synth -c stage=dev && python -m infra.sizes cdk.out

Lambda refuses a function whose code and layers, unzipped, exceed 250 MiB; this reads the
asset folders the templates point at (``aws:asset:path``), so it measures what would deploy.
It also names what two layers of one function both hold under ``python/`` (a second copy
that costs size and is never imported): there should be none.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from infra.bundling import LAMBDA_UNZIPPED_LIMIT_MB


def folder_mb(path: Path) -> float:
    return sum(_file_mb(p) for p in path.rglob("*") if p.is_file())


def _file_mb(path: Path) -> float:
    return path.stat().st_size / (1024 * 1024)


def _asset_mb(assembly: Path, resources: dict[str, Any], logical: str) -> float:
    return folder_mb(_asset_path(assembly, resources, logical))


def _asset_path(assembly: Path, resources: dict[str, Any], logical: str) -> Path:
    """The asset folder of a function or layer: its ``aws:asset:path`` metadata (the CLI's
    synth), else the staged ``asset.<hash>`` named by its S3 key (``python3 infra/app.py``)."""
    resource = resources[logical]
    raw = resource.get("Metadata", {}).get("aws:asset:path")
    if raw is None:
        code = resource["Properties"].get("Code") or resource["Properties"]["Content"]
        raw = "asset." + str(code["S3Key"]).removesuffix(".zip")
    path = Path(raw)
    return path if path.is_absolute() else assembly / path


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


def duplicates(assembly: Path) -> dict[str, dict[str, float]]:
    """``{stack/function: {name: MB}}``: the entries of ``python/`` that more than one of the
    function's layers holds, with the size of the extra copies."""
    found: dict[str, dict[str, float]] = {}
    for template_file in sorted(assembly.glob("*.template.json")):
        resources: dict[str, Any] = json.loads(template_file.read_text())["Resources"]
        for logical, resource in resources.items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            refs = [x["Ref"] for x in resource["Properties"].get("Layers", []) if "Ref" in x]
            seen: dict[str, int] = {}
            extra: dict[str, float] = {}
            for ref in refs:
                python = _asset_path(assembly, resources, ref) / "python"
                for entry in sorted(python.iterdir()) if python.is_dir() else []:
                    if entry.name.endswith(".dist-info"):
                        continue
                    seen[entry.name] = seen.get(entry.name, 0) + 1
                    if seen[entry.name] > 1:
                        size = folder_mb(entry) if entry.is_dir() else _file_mb(entry)
                        extra[entry.name] = extra.get(entry.name, 0.0) + size
            if extra:
                found[f"{template_file.name.removesuffix('.template.json')}/{logical}"] = extra
    return found


def main(argv: list[str]) -> int:
    assembly = Path(argv[1] if len(argv) > 1 else "cdk.out")
    over = 0
    for name, parts in function_sizes(assembly).items():
        total = sum(parts.values())
        over += total > LAMBDA_UNZIPPED_LIMIT_MB
        detail = ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
        flag = "OVER" if total > LAMBDA_UNZIPPED_LIMIT_MB else "ok"
        print(f"{flag:4} {total:7.1f} MiB  {name}  ({detail})")
    for name, extra in duplicates(assembly).items():
        listed = ", ".join(f"{k} {v:.1f}" for k, v in sorted(extra.items(), key=lambda i: -i[1]))
        print(f"dup  {sum(extra.values()):7.1f} MiB  {name}  in two layers: {listed}")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
