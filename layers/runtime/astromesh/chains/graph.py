"""The expanded chain of an agent, and the checks made before any run.

Upstream compiles ``spec.chain`` when its runtime boots, so a missing agent, a cycle or a
chain deeper than ``max_depth`` stops it from starting instead of failing halfway through a
run. Here the same checks run when the agent is built (``AgentRuntime`` refuses to build it,
naming the path), and :func:`chain_graph` gives upstream's ``GET /v1/agents/{name}/chain``
body: ``{agent, mode, max_depth, links: [{agent, depth, via, when, default}]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from astromesh.errors import ConfigurationError

if TYPE_CHECKING:
    from astromesh.config import AgentDocument
    from astromesh.config.agent import ChainSpec


class ChainError(ConfigurationError):
    """A chain that cannot run: a chained agent is missing, the chain loops or nests too deep."""

    code = "invalid_chain"


def _chain_of(name: str, docs: Mapping[str, AgentDocument]) -> ChainSpec | None:
    doc = docs.get(name)
    return doc.spec.chain if doc is not None else None


def check_chain(name: str, chain: ChainSpec, docs: Mapping[str, AgentDocument]) -> None:
    """Refuse a chain whose agents are not all defined, that loops, or nests deeper than its
    ``max_depth``; the message names the whole path.

    Raises:
        ChainError: the first problem found.
    """

    def walk(spec: ChainSpec, path: list[str]) -> None:
        if len(path) > chain.max_depth:
            raise ChainError(
                f"chain of agent {name!r} nests deeper than max_depth={chain.max_depth}:"
                f" {' -> '.join(path)}"
            )
        for step in spec.on_complete:
            targets = [step.agent]
            if step.on_error not in ("stop", "continue"):
                targets.append(step.on_error)
            for target in targets:
                if target not in docs:
                    raise ChainError(
                        f"agent {target!r}, chained by {path[-1]!r}, is not defined"
                        f" (chain of {name!r})"
                    )
                if target in path:
                    raise ChainError(
                        f"chain of agent {name!r} loops: {' -> '.join([*path, target])}"
                    )
            nested = _chain_of(step.agent, docs)
            if nested is not None:
                walk(nested, [*path, step.agent])

    walk(chain, [name])


def chain_graph(name: str, docs: Mapping[str, AgentDocument]) -> dict[str, Any] | None:
    """The expanded chain of agent ``name`` (``None`` when it declares none), without running
    anything: every link with its depth and the agent it hangs from (``via``, ``None`` for
    the agent's own links)."""
    root = _chain_of(name, docs)
    if root is None:
        return None
    links: list[dict[str, Any]] = []

    def walk(parent: str, spec: ChainSpec, path: list[str]) -> None:
        if len(path) > root.max_depth:
            return
        for step in spec.on_complete:
            if step.agent in path:  # a loop: the build refuses it; the graph stops there
                continue
            links.append(
                {
                    "agent": step.agent,
                    "depth": len(path),
                    "via": None if len(path) == 1 else parent,
                    "when": step.when,
                    "default": step.default,
                }
            )
            nested = _chain_of(step.agent, docs)
            if nested is not None:
                walk(step.agent, nested, [*path, step.agent])

    walk(name, root, [name])
    return {"agent": name, "mode": root.mode, "max_depth": root.max_depth, "links": links}
