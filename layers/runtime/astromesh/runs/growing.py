"""A list that counts every change other than growing at its end.

A run's ``messages``, ``steps`` and kept spans only ever grow, and the stores write each save's
new elements only (:mod:`astromesh.stores._journal`). Knowing that a list only grew since the
last save used to mean comparing every element it held then, by identity: a walk over the
whole run at every save. A :class:`GrowingList` makes it one comparison: ``append``, ``extend``
and ``+=`` are the list's own (they only add at the end), and every other way to change it
(item or slice assignment, ``del``, ``insert``, ``pop``, ``remove``, ``clear``, ``sort``,
``reverse``, ``*=``, ``__init__`` again) goes through this class and counts one more
:attr:`GrowingList.edits`. So while ``edits`` is what it was, the first ``n`` elements are the
objects they were (those methods are the only ways Python code changes a list in place).

It is still a ``list`` (pydantic validates, serialises and copies it as one; a slice or a
``model_dump`` is a plain list). The run models make their lists ``GrowingList`` when they
are validated (an ``AfterValidator(growing)`` on the field); a plain list assigned later works
too, only its saves compare element by element.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, SupportsIndex, TypeVar

T = TypeVar("T")


class GrowingList(list[T]):
    """A ``list`` whose :attr:`edits` counts the changes that are not appends (module doc)."""

    __slots__ = ("edits",)

    edits: int
    """How many times the list was changed other than by growing at its end."""

    def __init__(self, items: Iterable[T] = ()) -> None:
        # Called again on a filled list, __init__ empties it first: an edit too.
        self.edits = getattr(self, "edits", -1) + 1
        super().__init__(items)

    def __setitem__(self, index: Any, value: Any) -> None:
        self.edits += 1
        super().__setitem__(index, value)

    def __delitem__(self, index: Any) -> None:
        self.edits += 1
        super().__delitem__(index)

    def __imul__(self, count: SupportsIndex) -> GrowingList[T]:  # type: ignore[override]
        self.edits += 1
        return super().__imul__(count)  # type: ignore[return-value]

    def insert(self, index: SupportsIndex, value: T) -> None:
        self.edits += 1
        super().insert(index, value)

    def pop(self, index: SupportsIndex = -1) -> T:
        self.edits += 1
        return super().pop(index)

    def remove(self, value: T) -> None:
        self.edits += 1
        super().remove(value)

    def clear(self) -> None:
        self.edits += 1
        super().clear()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self.edits += 1
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self.edits += 1
        super().reverse()


def growing(items: list[T]) -> GrowingList[T]:
    """``items`` as a :class:`GrowingList` (a validator: the models' lists are made so)."""
    return items if type(items) is GrowingList else GrowingList(items)
