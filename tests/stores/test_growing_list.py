"""The run's lists count every change that is not an append, so a save can tell in O(1) that
what it stored earlier is still in place (``astromesh.runs.growing``)."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from astromesh.models.types import Message
from astromesh.runs.growing import GrowingList
from astromesh.runs.state import RunState
from astromesh.runs.trace import RunTrace


def _imul(items: GrowingList[int]) -> None:
    items *= 2


def _reinit(items: GrowingList[int]) -> None:
    items.__init__([9])  # type: ignore[misc]


def _slice(items: GrowingList[int]) -> None:
    items[1:2] = [7, 8]


def _delete(items: GrowingList[int]) -> None:
    del items[0]


EDITS: dict[str, Callable[[GrowingList[int]], Any]] = {
    "item assignment": lambda items: items.__setitem__(0, 5),
    "slice assignment": _slice,
    "del": _delete,
    "insert": lambda items: items.insert(0, 5),
    "pop": lambda items: items.pop(),
    "remove": lambda items: items.remove(1),
    "clear": lambda items: items.clear(),
    "sort": lambda items: items.sort(reverse=True),
    "reverse": lambda items: items.reverse(),
    "*=": _imul,
    "__init__ again": _reinit,
}


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_every_change_other_than_growing_counts_an_edit(
    edit: Callable[[GrowingList[int]], Any],
) -> None:
    items = GrowingList([1, 2, 3])
    edit(items)
    assert items.edits == 1


def test_growing_at_the_end_counts_nothing() -> None:
    items = GrowingList([1])
    items.append(2)
    items.extend([3, 4])
    items += [5]
    assert items == [1, 2, 3, 4, 5] and items.edits == 0


def test_the_run_models_hold_growing_lists_however_they_are_built() -> None:
    built = RunState(
        agent="a",
        query="q",
        messages=[Message.user("q")],
        trace=RunTrace(trace_id="1" * 32, span_id="1" * 16, spans=[{"name": "x"}]),
    )
    loaded = RunState.model_validate_json(built.model_dump_json())
    empty = RunState(agent="a", query="q")
    for run in (built, loaded, empty):
        assert type(run.messages) is GrowingList and type(run.steps) is GrowingList
    assert built.trace is not None and type(built.trace.spans) is GrowingList
    assert loaded.trace is not None and type(loaded.trace.spans) is GrowingList
    # Still a list to everything else: the same JSON, plain lists when dumped.
    assert loaded.model_dump() == built.model_dump()
    assert type(built.model_dump()["messages"]) is list


def test_copies_keep_the_count_and_are_new_lists() -> None:
    items = GrowingList([1, 2])
    items.pop()
    for twin in (copy.deepcopy(items), copy.copy(items), pickle.loads(pickle.dumps(items))):
        assert twin == [1] and twin is not items and twin.edits == 1
