"""``read_file``: read a text file under one allowed folder.

``config.root`` (relative paths are taken from the agents folder; the agents folder itself
when left out, as upstream's agents do) confines what an agent reads to what its author put
there. A requested path is resolved (``..`` and symlinks
followed) and must stay inside the resolved root; the file is then opened without following
a final symlink and, on Linux, the opened descriptor's real path is checked again, so
swapping a path component for a symlink between the check and the open cannot escape
either. At most ``config.max_bytes`` (default 256 KiB) are returned, with a note when the
file is longer; bytes that are not valid in the ``encoding`` asked for (upstream's argument,
UTF-8 by default) are replaced. Upstream's ``config.allowed_paths`` with one folder is read
as ``root``. Without a root, the first folder of ``permissions.filesystem.read`` that exists
is the root; when none exists yet the tool is still built (upstream's agent loads) and takes
the first that exists on its first call, which fails, naming them, until one does.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import Field

from astromesh.errors import ConfigurationError, ToolError
from astromesh.security.grants import FILE_AGENT_GRANTS, Grants
from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin._common import RootedConfig

_PROC_FD = Path("/proc/self/fd")

logger = logging.getLogger(__name__)


class ReadFileConfig(RootedConfig):
    one_folder = "read_file reads under one folder"
    root: str | None = None
    """The folder files are read from; the agents folder when left out (upstream's agents
    name no root, and the agents folder is the one their author certainly chose)."""
    max_bytes: int = Field(256 * 1024, ge=1, le=50 * 1024 * 1024)


class FileRefused(ToolError):
    """The path is outside the allowed root, missing, or not a regular file."""


class ReadFileTool(Tool):
    """Reads files confined to ``root``."""

    def __init__(
        self,
        root: Path | None,
        name: str = "read_file",
        description: str = "",
        *,
        max_bytes: int = 256 * 1024,
        grants: Grants = FILE_AGENT_GRANTS,
        candidates: tuple[Path, ...] = (),
    ) -> None:
        self._grants = grants
        self._name = name
        self._candidates = candidates
        """Without ``root``: the folders the agent may read, the first existing one chosen
        on the first call (upstream's agents load without them and fail only when reading)."""
        self._root: Path | None = None
        self.forbidden: tuple[Path, ...] = ()
        if root is not None:
            self._use_root(root)
        self.max_bytes = max_bytes
        super().__init__(
            name=name,
            description=description
            or "Read a text file by its path relative to the allowed folder.",
            parameters={
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "e.g. notes/today.md"},
                    "encoding": {"type": "string", "default": "utf-8"},
                },
                "required": ["path"],
                "additionalProperties": False,
            },
        )

    def _use_root(self, root: Path) -> None:
        resolved = self._grants.check_root(root, tool=self._name)
        if not resolved.exists():
            raise ConfigurationError(f"builtin tool {self._name!r}: root {root} does not exist")
        if not resolved.is_dir():
            raise ConfigurationError(f"builtin tool {self._name!r}: root {root} is not a folder")
        self.forbidden = tuple(
            f for f in self._grants.forbidden_roots if f.is_relative_to(resolved) and f != resolved
        )
        """Forbidden folders inside the root (a file agent's root of ``/`` still never reads
        ``/proc``): refused per read."""
        self._root = resolved

    @property
    def root(self) -> Path:
        """The folder reads stay under; for a tool built without one, the first of its
        candidate folders that exists now.

        Raises:
            FileRefused: none of the candidate folders exists (yet).
        """
        if self._root is None:
            existing = [c for c in self._candidates if c.is_dir()]
            if not existing:
                raise FileRefused(
                    "this agent may read only under "
                    + ", ".join(str(c) for c in self._candidates)
                    + " and none of them exists"
                )
            try:
                self._use_root(existing[0])
            except ConfigurationError as exc:
                raise FileRefused(str(exc)) from None
        assert self._root is not None
        return self._root

    @classmethod
    def from_config(
        cls,
        config: ReadFileConfig,
        *,
        base: Path | None,
        name: str,
        description: str,
        grants: Grants = FILE_AGENT_GRANTS,
    ) -> ReadFileTool:
        if config.root is None:
            # The first folder the agent's permissions.filesystem.read lists that exists, else
            # the agents folder: upstream's agents say where they read there, if anywhere.
            # When none exists yet the tool is still built (upstream's agent loads) and picks
            # its folder on its first call, which fails, naming them, while none exists.
            allowed = tuple(grants.file_roots or ())
            listed = [r for r in allowed if r.is_dir()]
            if allowed and not listed:
                logger.warning(
                    "tool=<%s> | names no config.root and none of the folders the agent may"
                    " read exists yet (%s): reads fail until one does",
                    name,
                    ", ".join(str(r) for r in allowed),
                )
                return cls(
                    None,
                    name,
                    description,
                    max_bytes=config.max_bytes,
                    grants=grants,
                    candidates=allowed,
                )
            root = listed[0] if listed else (base or Path.cwd())
            return cls(root, name, description, max_bytes=config.max_bytes, grants=grants)
        root = Path(config.root).expanduser()
        if not root.is_absolute():
            root = (base or Path.cwd()) / root
        return cls(root, name, description, max_bytes=config.max_bytes, grants=grants)

    def resolve(self, requested: str) -> Path:
        """The real path of ``requested`` if it is a file inside the root.

        Raises:
            FileRefused: outside the root (by ``..``, an absolute path or a symlink),
                missing, or not a regular file.
        """
        if "\x00" in requested:
            raise FileRefused("path contains a NUL byte")
        candidate = self.root / requested
        try:
            real = candidate.resolve(strict=True)
        except FileNotFoundError:
            raise FileRefused(f"no such file: {requested}") from None
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            raise FileRefused(f"cannot resolve {requested}: {exc}") from None
        if not real.is_relative_to(self.root) or self._forbidden(real):
            raise FileRefused(f"{requested} is outside the allowed folder")
        if not real.is_file():
            raise FileRefused(f"{requested} is not a regular file")
        return real

    def read(self, requested: str, encoding: str = "utf-8") -> dict[str, Any]:
        real = self.resolve(requested)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(real, flags)
        except OSError as exc:
            raise FileRefused(f"cannot open {requested}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            self._check_descriptor(fd, requested)
            size = os.fstat(fd).st_size
            data = handle.read(self.max_bytes)
        try:
            text = data.decode(encoding, errors="replace")
        except LookupError:
            raise FileRefused(f"unknown encoding {encoding!r}") from None
        result: dict[str, Any] = {
            "path": real.relative_to(self.root).as_posix(),
            "size": size,
            "content": text,
        }
        if size > self.max_bytes:
            result["truncated"] = f"showing the first {self.max_bytes} of {size} bytes"
        return result

    def _check_descriptor(self, fd: int, requested: str) -> None:
        """Where /proc exists, check what was actually opened (closes the TOCTOU window)."""
        link = _PROC_FD / str(fd)
        try:
            opened = Path(os.readlink(link))
        except OSError:
            return
        if not opened.is_relative_to(self.root) or self._forbidden(opened):
            raise FileRefused(f"{requested} is outside the allowed folder")

    def _forbidden(self, path: Path) -> bool:
        return any(path.is_relative_to(folder) for folder in self.forbidden)

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        return await asyncio.to_thread(
            self.read, arguments["path"], arguments.get("encoding") or "utf-8"
        )
