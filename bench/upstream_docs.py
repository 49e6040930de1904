"""How many of upstream Astromesh's own ``astromesh/v1`` documents validate here.

Usage: ``python3 bench/upstream_docs.py UPSTREAM_GIT_DIR [--verbose]`` where UPSTREAM_GIT_DIR is
a clone (or bare git dir) of upstream Astromesh. Nothing of upstream's is copied into this
repository: the documents are read from the clone with ``git show`` into a temporary folder.

The corpus is what upstream ships or shows: ``config/`` (agents, providers, RAG, runtime,
templates, workflows, node profiles), ``astromesh-node/config/profiles``, the Helm values'
embedded documents, and the YAML code blocks of ``README.md``, ``docs/*.md`` and the docs site
that hold an ``apiVersion: astromesh/v1`` document. Each document is validated as
``astromesh validate FILE`` would (validation, then an offline build of each valid agent),
laid out as upstream lays it out: a file of ``config/`` served with the rest of ``config/``,
as upstream serves it (an agent chained from the next file, or run by a workflow,
resolves), a docs block beside the other blocks of its page. A document counts as valid
when neither reports an error. Warnings do not count as errors.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import yaml

_FENCE = re.compile(r"```ya?ml[^\n]*\n(.*?)```", re.S)
_YAML_ROOTS = ("config/", "astromesh-node/config/profiles/", "astromesh/config/agents/")
_HELM_VALUES = re.compile(r"^deploy/helm/astromesh/values[^/]*\.yaml$")
_DOC_FILES = re.compile(r"^(README\.md|docs/[^/]+\.md|docs-site/src/content/docs/.+\.mdx?)$")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def _documents_in(text: str) -> list[str]:
    """The ``astromesh/v1`` documents of a YAML text, each as its own YAML text."""
    try:
        loaded = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        # A sample with `...` ellipses or template syntax: split by hand and keep what parses.
        loaded = []
        for part in re.split(r"^---\s*$", text, flags=re.M):
            try:
                loaded.append(yaml.safe_load(part))
            except yaml.YAMLError:
                continue
    found: list[str] = []
    for item in loaded:
        found += [yaml.safe_dump(doc, sort_keys=False) for doc in _walk(item)]
    return found


def _walk(item: object) -> list[dict[str, object]]:
    """Every mapping that is an ``astromesh/v1`` document, at any depth (Helm values nest
    them; a values file may also hold them as YAML text)."""
    if isinstance(item, dict):
        if str(item.get("apiVersion", "")).startswith("astromesh/") and "kind" in item:
            return [item]
        out: list[dict[str, object]] = []
        for value in item.values():
            out += _walk(value)
        return out
    if isinstance(item, list):
        return [doc for value in item for doc in _walk(value)]
    if isinstance(item, str) and "astromesh/v1" in item and "\n" in item:
        return [yaml.safe_load(text) for text in _documents_in(item)]
    return []


def collect(repo: Path) -> list[tuple[str, str]]:
    """(origin, YAML text) of every upstream document of the corpus."""
    names = _git(repo, "ls-tree", "-r", "HEAD", "--name-only").splitlines()
    corpus: list[tuple[str, str]] = []
    for name in names:
        is_yaml = name.endswith((".yaml", ".yml")) and (
            name.startswith(_YAML_ROOTS) or _HELM_VALUES.match(name)
        )
        is_doc = bool(_DOC_FILES.match(name))
        if not (is_yaml or is_doc):
            continue
        text = _git(repo, "show", f"HEAD:{name}")
        if "astromesh/v1" not in text:
            continue
        blocks = [text] if is_yaml else _FENCE.findall(text)
        for i, block in enumerate(blocks):
            if "astromesh/v1" not in block:
                continue
            for j, doc in enumerate(_documents_in(block)):
                corpus.append((f"{name}#{i}.{j}", doc))
    return corpus


async def _check(path: Path, served: Path | None) -> list[str]:
    """Errors of ``astromesh validate path --agents served`` (validation, then an offline
    build)."""
    from astromesh.validation import validate_path

    return [str(issue) for issue in (await validate_path(path, served)).problems]


def _place(root: Path, origin: str) -> Path:
    """Where the document of ``origin`` (``path#block.doc``) is written under ``root``: a
    shipped YAML file's documents in that file's folder, a docs page's blocks in a folder
    of their own."""
    name, _, index = origin.partition("#")
    if name.endswith((".yaml", ".yml")):
        stem = Path(name)
        return root / stem.parent / f"{stem.stem}.{index}.yaml"
    return root / name.replace(".", "_") / f"block{index}.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream", type=Path)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    corpus = collect(args.upstream)
    kinds: Counter[str] = Counter()
    valid: Counter[str] = Counter()
    causes: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        placed = [(origin, text, _place(Path(tmp), origin)) for origin, text in corpus]
        for _, text, file in placed:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text, encoding="utf-8")
        for origin, text, file in placed:
            kind = str((yaml.safe_load(text) or {}).get("kind"))
            kinds[kind] += 1
            # upstream serves config/ (its agents, workflows, providers); a docs block stands
            # with the other blocks of its page
            served = Path(tmp) / "config" if origin.startswith("config/") else None
            errors = asyncio.run(_check(file, served))
            if not errors:
                valid[kind] += 1
                continue
            first = errors[0].split(": ", 1)[-1]
            causes[re.sub(r"'[^']*'", "'…'", first)[:110]] += 1
            if args.verbose:
                print(f"FAIL {origin}: {errors[0]}")
    total, ok = sum(kinds.values()), sum(valid.values())
    print(f"upstream documents: {total}; valid: {ok} ({100 * ok / max(total, 1):.0f}%)")
    for kind, count in kinds.most_common():
        print(f"  {kind}: {valid[kind]}/{count}")
    if causes:
        print("first error of each failing document, grouped:")
        for cause, count in causes.most_common(25):
            print(f"  {count:3d}  {cause}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
