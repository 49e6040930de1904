"""The plan a ``plan_and_execute`` planner writes: validated as a dependency graph.

Kept apart from the pattern so the rules (unique ids, known dependencies, no cycles) are
readable on their own, and so they run inside pydantic validation: a broken plan is reported
to the planner with the same wording a person would read in the run's steps.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PlanItem(BaseModel):
    """One step of a plan."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="unique within the plan")
    task: str = Field(min_length=1, description="what this step must find out or do")
    depends_on: list[str] = Field(
        default_factory=list, description="ids of the steps whose results this one needs"
    )
    tool: str | None = Field(None, description="a tool to call for this step, if any")
    arguments: dict[str, Any] | None = Field(None, description="the tool's arguments")


class Plan(BaseModel):
    """Steps whose ``depends_on`` form a directed acyclic graph."""

    model_config = ConfigDict(extra="forbid")

    steps: list[PlanItem] = Field(min_length=1)

    @model_validator(mode="after")
    def _is_a_dag(self) -> Self:
        ids = [item.id for item in self.steps]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"step ids must be unique; repeated: {', '.join(duplicates)}")
        known = set(ids)
        for item in self.steps:
            for dep in item.depends_on:
                if dep not in known:
                    raise ValueError(f"step {item.id!r} depends on unknown step {dep!r}")
            if item.arguments is not None and item.tool is None:
                raise ValueError(f"step {item.id!r} has arguments but no tool")
        cycle = find_cycle({item.id: item.depends_on for item in self.steps})
        if cycle:
            raise ValueError(f"steps depend on each other in a cycle: {' -> '.join(cycle)}")
        return self


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a path that ends where it starts (``a -> b -> a``), or ``None``."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for dep in graph.get(node, []):
            found = visit(dep)
            if found:
                return found
        path.pop()
        done.add(node)
        return None

    for node in graph:
        found = visit(node)
        if found:
            return found
    return None
