"""``write_file``: confined to its root against ``..``, absolute paths, symlinks (in a folder
or as the file), hard links and sizes; roots refused by the grants; upstream's config names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from astromesh.config.tools import AnyTool
from astromesh.errors import ConfigurationError
from astromesh.security.grants import Grants
from astromesh.tools.base import ToolContext
from astromesh.tools.builtin import WriteFileTool, build_builtin

CTX = ToolContext(run_id="run_1", agent="a", session_id="s")


def cfg(**config):
    return TypeAdapter(AnyTool).validate_python(
        {"type": "builtin", "name": "write_file", "config": config}
    )


@pytest.fixture
def out(tmp_path: Path) -> Path:
    root = tmp_path / "out"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("original")
    (root / "link_dir").symlink_to(outside)
    (root / "link_file").symlink_to(outside / "victim.txt")
    os.link(outside / "victim.txt", root / "hard.txt")
    return root


async def test_writes_inside_the_root_creating_folders(out: Path) -> None:
    tool = WriteFileTool(out)
    result = await tool.call({"path": "reports/2026/today.md", "content": "# Hi ñ"}, CTX)
    assert result.ok, result.content
    assert result.data == {"path": "reports/2026/today.md", "bytes_written": 7}
    assert (out / "reports/2026/today.md").read_text() == "# Hi ñ"
    again = await tool.call({"path": "reports/2026/today.md", "content": "x"}, CTX)
    assert again.ok and (out / "reports/2026/today.md").read_text() == "x"


async def test_an_absolute_path_inside_the_root_is_accepted(out: Path) -> None:
    result = await WriteFileTool(out).call({"path": str(out / "a.txt"), "content": "a"}, CTX)
    assert result.ok and (out / "a.txt").read_text() == "a"


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("../outside/victim.txt", "outside the allowed folder"),
        ("../../../../tmp/evil.txt", "outside the allowed folder"),
        ("/etc/evil.conf", "outside the allowed folder"),
        ("link_dir/victim.txt", "outside the allowed folder"),
        ("link_dir/new.txt", "outside the allowed folder"),
        ("link_file", "cannot write"),
        ("hard.txt", "hard links"),
        ("nul\x00.txt", "NUL"),
        ("sub/..", "does not name a file"),
    ],
)
async def test_escapes_are_refused(out: Path, path: str, words: str) -> None:
    result = await WriteFileTool(out).call({"path": path, "content": "pwned"}, CTX)
    assert not result.ok and words in result.content, result.content
    assert (out.parent / "outside" / "victim.txt").read_text() == "original"
    assert not (out.parent / "outside" / "new.txt").exists()
    assert not Path("/tmp/evil.txt").exists()


async def test_size_and_encoding_are_checked(out: Path) -> None:
    tool = WriteFileTool(out, max_bytes=10)
    big = await tool.call({"path": "big.txt", "content": "x" * 11}, CTX)
    assert not big.ok and "at most 10" in big.content
    latin = await tool.call({"path": "l.txt", "content": "ñ", "encoding": "latin-1"}, CTX)
    assert latin.ok and (out / "l.txt").read_bytes() == b"\xf1"
    bad = await tool.call({"path": "b.txt", "content": "x", "encoding": "nope"}, CTX)
    assert not bad.ok and "nope" in bad.content
    assert not (out / "big.txt").exists() and not (out / "b.txt").exists()


@pytest.mark.parametrize("root", ["/proc", "/sys/kernel", "/dev"])
def test_kernel_roots_are_refused_for_every_agent(root: str) -> None:
    with pytest.raises(ConfigurationError, match="root refused"):
        build_builtin(cfg(root=root))


def test_registered_grants_confine_the_root(tmp_path: Path, out: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    grants = Grants(
        registered=True,
        file_roots=(out,),
        write_roots=(out,),
        forbidden_roots=(Path("/etc"), Path("/proc")),
        protected_roots=(agents,),
    )
    assert isinstance(build_builtin(cfg(root=str(out)), grants=grants), WriteFileTool)
    for root in (tmp_path, agents, Path("/etc"), tmp_path / "outside"):
        with pytest.raises(ConfigurationError, match="root refused"):
            build_builtin(cfg(root=str(root)), grants=grants)


def test_a_root_is_required_unless_a_write_permission_names_one(out: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"needs config\.root"):
        build_builtin(cfg())
    tool = build_builtin(cfg(), grants=Grants(write_roots=(out,)))
    assert isinstance(tool, WriteFileTool) and tool.root == out


def test_upstream_allowed_paths_is_one_root(out: Path, tmp_path: Path) -> None:
    tool = build_builtin(cfg(allowed_paths=[str(out)]))
    assert isinstance(tool, WriteFileTool) and tool.root == out
    with pytest.raises(ConfigurationError, match="exactly one"):
        build_builtin(cfg(allowed_paths=[str(out), str(tmp_path)]))


def test_relative_roots_come_from_the_agents_folder(tmp_path: Path, out: Path) -> None:
    tool = build_builtin(cfg(root="out"), search_path=tmp_path)
    assert isinstance(tool, WriteFileTool) and tool.root == out


# -- read_file in upstream's form ------------------------------------------------------------


async def test_read_file_takes_upstreams_allowed_paths_and_encoding(out: Path) -> None:
    (out / "latin.txt").write_bytes("año".encode("latin-1"))
    reader = build_builtin(
        TypeAdapter(AnyTool).validate_python(
            {"type": "builtin", "name": "read_file", "config": {"allowed_paths": [str(out)]}}
        )
    )
    result = await reader.call({"path": "latin.txt", "encoding": "latin-1"}, CTX)
    assert result.ok and result.data["content"] == "año"
    unknown = await reader.call({"path": "latin.txt", "encoding": "nope"}, CTX)
    assert not unknown.ok and "unknown encoding" in unknown.content
    escape = await reader.call({"path": "link_file"}, CTX)
    assert not escape.ok


async def test_dry_run_describes_the_write_instead(out: Path) -> None:
    from astromesh.tools.factory import build_tool

    tool = build_tool(cfg(root=str(out)), grants=Grants(dry_run=True))
    result = await tool.call({"path": "dry.txt", "content": "x"}, CTX)
    assert result.ok and result.data["dry_run"] is True
    assert not (out / "dry.txt").exists()
