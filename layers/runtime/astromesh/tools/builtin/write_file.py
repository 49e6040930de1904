"""``write_file``: write a text file under one folder the agent's grants allow (upstream's builtin).

Arguments as upstream's: ``path``, ``content``, ``encoding`` (``utf-8``). ``config.root`` is
the folder (upstream's ``allowed_paths`` with one entry is read as it); when left out, the
first folder the agent's ``permissions.filesystem.write`` lists. There is no default folder:
a tool that writes must be told where.

The same roots rules as ``read_file``, for writing (:meth:`Grants.write_root_refusal
<astromesh.security.grants.Grants.write_root_refusal>`): never ``/proc``, ``/sys``, ``/dev``;
for registered agents never ``/etc``, ``/run``, ``/boot``, the state folder or the agents
folder, and only under the policy's ``file_roots``. A requested path is confined to the root
whatever it says (``..``, an absolute path, a symlink in any component): the parent folder is
resolved and checked, created inside the root if missing, then opened and its descriptor's
real path checked again; the file is opened *relative to that descriptor* without following
a symlink, so no component can be swapped between the check and the write. A file with more
than one hard link is refused (its other name may be outside). At most ``config.max_bytes``
(1 MiB) are written per call.
"""

from __future__ import annotations

import asyncio
import codecs
import os
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import Field

from astromesh.errors import ConfigurationError, ToolError
from astromesh.security.grants import FILE_AGENT_GRANTS, Grants
from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin._common import RootedConfig

_PROC_FD = Path("/proc/self/fd")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class WriteFileConfig(RootedConfig):
    one_folder = "write_file writes under one folder"
    max_bytes: int = Field(1024 * 1024, ge=1, le=50 * 1024 * 1024)


class WriteRefused(ToolError):
    """The path leaves the root, or is not a file that may be written."""


class WriteFileTool(Tool):
    """Writes files confined to ``root``."""

    def __init__(
        self,
        root: Path,
        name: str = "write_file",
        description: str = "",
        *,
        max_bytes: int = 1024 * 1024,
        grants: Grants = FILE_AGENT_GRANTS,
    ) -> None:
        resolved = root.resolve()
        problem = grants.write_root_refusal(resolved)
        if problem is not None:
            raise ConfigurationError(f"builtin tool {name!r}: root refused: {problem}")
        if not resolved.is_dir():
            raise ConfigurationError(f"builtin tool {name!r}: root {root} is not a folder")
        self.root = resolved
        self.forbidden = tuple(
            f
            for f in (*grants.forbidden_roots, *grants.protected_roots)
            if f.is_relative_to(self.root) and f != self.root
        )
        """Forbidden folders inside the root: refused per write."""
        self.max_bytes = max_bytes
        super().__init__(
            name=name,
            description=description
            or "Write a text file by its path relative to the allowed folder (replaces it).",
            parameters={
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "e.g. reports/today.md"},
                    "content": {"type": "string"},
                    "encoding": {"type": "string", "default": "utf-8"},
                },
                "required": ["path", "content"],
                "additionalProperties": False,
            },
        )

    @classmethod
    def from_config(
        cls,
        config: WriteFileConfig,
        *,
        base: Path | None,
        name: str,
        description: str,
        grants: Grants = FILE_AGENT_GRANTS,
    ) -> WriteFileTool:
        """The tool for ``config``; a relative root is taken from ``base`` (the agents folder).

        Raises:
            ConfigurationError: no root given nor granted, or the root is refused.
        """
        if config.root is None:
            listed = [r for r in grants.write_roots or () if r.is_dir()]
            if not listed:
                raise ConfigurationError(
                    f"builtin tool {name!r} needs config.root (the folder it writes under)"
                    " or spec.permissions.filesystem.write naming one"
                )
            root = listed[0]
        else:
            root = Path(config.root).expanduser()
            if not root.is_absolute():
                root = (base or Path.cwd()) / root
        return cls(root, name, description, max_bytes=config.max_bytes, grants=grants)

    def _inside(self, path: Path) -> bool:
        return path.is_relative_to(self.root) and not any(
            path.is_relative_to(folder) for folder in self.forbidden
        )

    def target(self, requested: str) -> tuple[Path, str]:
        """``(parent folder, file name)`` of ``requested``, the parent resolved and inside
        the root (not created yet).

        Raises:
            WriteRefused: outside the root, a NUL byte, or no file name.
        """
        if "\x00" in requested:
            raise WriteRefused("path contains a NUL byte")
        pure = PurePosixPath(requested)
        if pure.is_absolute():
            try:
                pure = pure.relative_to(self.root)
            except ValueError:
                raise WriteRefused(f"{requested} is outside the allowed folder") from None
        if not pure.name or pure.name in (".", ".."):
            raise WriteRefused(f"{requested} does not name a file")
        parent = (self.root / pure.parent).resolve()
        if not self._inside(parent):
            raise WriteRefused(f"{requested} is outside the allowed folder")
        return parent, pure.name

    def write(self, requested: str, content: str, encoding: str) -> dict[str, Any]:
        try:
            codecs.lookup(encoding)
            data = content.encode(encoding)
        except (LookupError, UnicodeEncodeError) as exc:
            raise WriteRefused(f"cannot encode the content as {encoding!r}: {exc}") from None
        if len(data) > self.max_bytes:
            raise WriteRefused(f"content is {len(data)} bytes; at most {self.max_bytes}")
        parent, name = self.target(requested)
        parent.mkdir(parents=True, exist_ok=True)
        dir_fd = os.open(parent, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
        try:
            self._check_descriptor(dir_fd, requested)
            flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _CLOEXEC
            try:
                fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
            except OSError as exc:  # ELOOP: the name is a symlink
                raise WriteRefused(f"cannot write {requested}: {exc.strerror}") from None
        finally:
            os.close(dir_fd)
        with os.fdopen(fd, "wb") as handle:
            info = os.fstat(fd)
            if info.st_nlink > 1:
                raise WriteRefused(f"{requested} has other names (hard links); not written")
            if not (info.st_mode & 0o170000) == 0o100000:
                raise WriteRefused(f"{requested} is not a regular file")
            os.ftruncate(fd, 0)
            handle.write(data)
        written = parent / name
        return {"path": written.relative_to(self.root).as_posix(), "bytes_written": len(data)}

    def _check_descriptor(self, fd: int, requested: str) -> None:
        """Where /proc exists, check the folder actually opened (closes the TOCTOU window)."""
        try:
            opened = Path(os.readlink(_PROC_FD / str(fd)))
        except OSError:
            return
        if not self._inside(opened):
            raise WriteRefused(f"{requested} is outside the allowed folder")

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        return await asyncio.to_thread(
            self.write,
            arguments["path"],
            arguments["content"],
            arguments.get("encoding") or "utf-8",
        )
