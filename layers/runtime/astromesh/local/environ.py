"""One process, several Lambda environments: ``os.environ`` as seen by the code running.

In AWS every function has its own process and environment. The emulation runs them all in
one process, so :func:`install` replaces ``os.environ`` with a :class:`LayeredEnviron`: while
a function's code runs (its container thread, and the asyncio tasks and ``to_thread`` calls
it starts, which copy the context), ``os.environ`` / ``os.getenv`` show exactly that
function's environment; everywhere else they show the process's own, unchanged.

The mapping is chosen through a :class:`contextvars.ContextVar`, so it follows the code
rather than a global swap (two functions running at once each see their own). Writes made by
a function (the cold-start resolver fills variables) stay in its environment. Threads started
with ``threading.Thread`` do not inherit a context in Python 3.11: code a function runs there
sees the process's environment.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

_current: contextvars.ContextVar[MutableMapping[str, str] | None] = contextvars.ContextVar(
    "astromesh_local_environ", default=None
)


class LayeredEnviron(os._Environ):  # type: ignore[type-arg,name-defined]
    """``os.environ``, or the environment of the function whose code is running."""

    def __init__(self, base: os._Environ) -> None:  # type: ignore[type-arg,name-defined]
        super().__init__(
            base._data, base.encodekey, base.decodekey, base.encodevalue, base.decodevalue
        )

    def __getitem__(self, key: str) -> str:
        current = _current.get()
        return super().__getitem__(key) if current is None else current[key]

    def __setitem__(self, key: str, value: str) -> None:
        current = _current.get()
        if current is None:
            super().__setitem__(key, value)
        else:
            current[key] = str(value)

    def __delitem__(self, key: str) -> None:
        current = _current.get()
        if current is None:
            super().__delitem__(key)
        else:
            del current[key]

    def __iter__(self) -> Iterator[str]:
        current = _current.get()
        return super().__iter__() if current is None else iter(list(current))

    def __len__(self) -> int:
        current = _current.get()
        return super().__len__() if current is None else len(current)

    def copy(self) -> dict[str, str]:
        return dict(self)

    def __repr__(self) -> str:
        return f"LayeredEnviron({dict(self)!r})"


def install() -> None:
    """Make ``os.environ`` layered (once per process; harmless to repeat)."""
    if not isinstance(os.environ, LayeredEnviron):
        os.environ = LayeredEnviron(os.environ)  # noqa: B003 - same data, layered reads


@contextmanager
def environment(variables: MutableMapping[str, str]) -> Iterator[MutableMapping[str, str]]:
    """Run the block (and what it starts in this context) with ``variables`` as the
    environment; ``variables`` itself receives what the code writes."""
    install()
    token = _current.set(variables)
    try:
        yield variables
    finally:
        _current.reset(token)


def run_in(variables: MutableMapping[str, str], call: Any, *args: Any) -> Any:
    """``call(*args)`` with ``variables`` as the environment."""
    with environment(variables):
        return call(*args)
