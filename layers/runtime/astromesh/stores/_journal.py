"""A run's growing lists stored as rows, so a step writes what it added, not the whole run.

A run document grows with every iteration: its ``messages``, ``steps`` and kept trace spans
(``trace.spans``) only ever get longer, and at twenty iterations they are nearly all of its
50 KB. Saving the whole document at every step made a run's writes quadratic in its length.
The durable stores therefore keep a run as

- a *head*: the document without those three lists (status, decision, usage, counters...),
  rewritten at every save, a few hundred bytes to a few KB;
- *items*: one row per element of each list (``list``, ``seq``, JSON ``body``), appended.

:func:`encode` works out what a save has to write: the head, and for each list either the
elements added since this store last wrote or read the run (``append``), or all of them
(``rewrite``) when that cannot be known to be safe. :func:`decode` puts a run back together.

How "added since" is known: a store that writes or reads a run remembers, on that
:class:`RunState` object, what the lists held (:class:`Snapshot`) and at which version. A save
appends only when the snapshot is this store's and was taken at the version being saved over,
and the list is known to still begin with the objects it held then; anything else (another
store's copy, a version adopted after a conflict, a list shortened, edited or replaced by one
that does not begin with them) rewrites that list, which is always correct.

"Still begins with them" costs O(1), not a walk over the run, for the lists the run models
hold (:class:`~astromesh.runs.growing.GrowingList`): the snapshot keeps the list object, its
length and its ``edits`` count. Appending and extending are the only changes a list can get
without ``edits`` counting one more (every other way through Python code is overridden to
count: item and slice assignment, ``del``, ``insert``, ``pop``, ``remove``, ``clear``,
``sort``, ``reverse``, ``*=``). So if the list is the same object and ``edits`` is unchanged,
its first ``length`` elements are exactly the objects stored, and only the tail is new; if
``edits`` changed, the list is rewritten. A list that is not a ``GrowingList`` (a plain list
assigned to the run) is compared element by element against a copy, by identity, as before;
so is a ``GrowingList`` that replaced the remembered one (the remembered one, unedited, still
holds the stored objects in its first ``length`` places). A list of which nothing is stored
appends whatever it holds. What neither check can see is an element changed in place after it
was stored: the runtime never does that (a redaction replaces text before the step is saved),
and with ``ASTROMESH_VERIFY_JOURNAL=1`` (the test suite sets it) every save checks that each
stored element still encodes as it did, and fails loudly where one was changed.

A document written before this layout (the whole run in the head) reads as before: lists
with no rows keep what the head holds, and its next save moves them into rows.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import is_
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter
from pydantic_core import PydanticSerializationError, to_json

from astromesh.models.types import Message
from astromesh.runs.growing import GrowingList
from astromesh.runs.state import RunState, StepRecord
from astromesh.stores._common import adopt
from astromesh.stores.base import PendingCheckpoint
from astromesh.text_boundary import dump_json, repair_value

ListName = Literal["messages", "steps", "spans"]
LISTS: tuple[ListName, ...] = ("messages", "steps", "spans")
"""The journaled lists: ``RunState.messages``, ``RunState.steps``, ``RunState.trace.spans``."""

HEAD_EXCLUDE: dict[str, Any] = {"messages": True, "steps": True, "trace": {"spans": True}}
"""What the head leaves out (``model_dump_json(exclude=...)``)."""

_MESSAGES: TypeAdapter[list[Message]] = TypeAdapter(list[Message])
_STEPS: TypeAdapter[list[StepRecord]] = TypeAdapter(list[StepRecord])
_SPANS: TypeAdapter[list[dict[str, Any]]] = TypeAdapter(list[dict[str, Any]])


def verifying() -> bool:
    """Whether saves check that stored elements were not changed in place (tests)."""
    return os.environ.get("ASTROMESH_VERIFY_JOURNAL", "") not in ("", "0", "false")


@dataclass(slots=True)
class Held:
    """What a store holds of one list: its first ``count`` elements, as objects of the run.

    ``items`` is the list itself when it is a :class:`GrowingList` (``edits`` is then its
    count of edits when written: while that is unchanged, its first ``count`` elements are the
    stored ones), else a copy of it (``edits`` is ``None``).
    """

    items: list[Any]
    count: int
    edits: int | None

    @classmethod
    def of(cls, now: list[Any]) -> Held:
        if type(now) is GrowingList:
            return cls(now, len(now), now.edits)
        return cls(list(now), len(now), None)

    def extended_by(self, now: list[Any]) -> bool:
        """``now`` begins with exactly the stored objects (see the module doc)."""
        count = self.count
        if count == 0:
            return True  # nothing stored: appending writes it all
        items = self.items
        if self.edits is not None:
            if items.edits != self.edits:  # type: ignore[attr-defined]
                return False  # changed other than by growing: what is stored is not known
            if now is items:
                return True  # the same list, only grown since: O(1)
        return len(now) >= count and all(map(is_, now, islice(items, count)))


@dataclass(slots=True)
class Snapshot:
    """What one store holds of one run, as seen by one :class:`RunState` object."""

    store: object
    version: int
    items: dict[ListName, Held]
    bodies: dict[ListName, list[str]] | None = None
    """The stored JSON of each element, kept only while :func:`verifying`."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Snapshot:
        # A deep copy of a run holds new elements, which this snapshot's references never
        # match: its next save rewrites, as it must. The store (locks, pools) is not copied.
        return self


@dataclass(slots=True)
class ListWrite:
    """What a save writes of one list: ``bodies`` from ``start`` on, after deleting the
    stored rows first when ``rewrite``."""

    name: ListName
    rewrite: bool
    start: int
    bodies: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Encoded:
    """A save of one run: its head and what to write of each list."""

    run_id: str
    head: str
    lists: list[ListWrite]
    snapshot: Snapshot
    """What the store holds once this write commits (adopted by :func:`remember`)."""

    def rows(self) -> list[tuple[str, str, int, str]]:
        """``(run_id, list, seq, body)`` of every element to insert (the SQL stores'
        ``run_items`` columns, in order)."""
        return [
            (self.run_id, w.name, w.start + i, body)
            for w in self.lists
            for i, body in enumerate(w.bodies)
        ]

    def rewritten(self) -> list[str]:
        """The lists whose stored rows are deleted before the insert."""
        return [w.name for w in self.lists if w.rewrite]


def current(run: RunState) -> dict[ListName, list[Any]]:
    """The run's three lists as they are now."""
    return {
        "messages": run.messages,
        "steps": run.steps,
        "spans": run.trace.spans if run.trace is not None else [],
    }


def encode(written: RunState, store: object, *, replacing: int | None) -> Encoded:
    """What writing ``written`` (the document as stored, its new version in its head) into
    ``store`` writes.

    Args:
        written: the run as it will be stored (``created_copy`` / ``saved_copy``).
        store: the store writing (snapshots of other stores are not trusted).
        replacing: the version this write replaces (``None`` for a create: every list is
            written whole).
    """
    head = dump_json(written, written.model_dump_json, exclude=HEAD_EXCLUDE)
    known = _snapshot_of(written, store, replacing)
    check = verifying()
    lists: list[ListWrite] = []
    items: dict[ListName, Held] = {}
    bodies: dict[ListName, list[str]] | None = {} if check else None
    for name, now in current(written).items():
        held = known.items.get(name) if known is not None else None
        appended = held is not None and held.extended_by(now)
        start = held.count if held is not None and appended else 0
        if appended and check and known is not None and known.bodies is not None:
            _verify_unchanged(written.id, name, now[:start], known.bodies.get(name, []))
        new = [encode_item(item) for item in now[start:]] if len(now) > start else []
        lists.append(ListWrite(name, rewrite=not appended, start=start, bodies=new))
        items[name] = Held.of(now)
        if bodies is not None:
            earlier = known.bodies.get(name, []) if appended and known and known.bodies else []
            bodies[name] = [*earlier[:start], *new]
    return Encoded(written.id, head, lists, Snapshot(store, written.version, items, bodies))


def remember(run: RunState, snapshot: Snapshot) -> None:
    """Record on ``run`` what ``snapshot.store`` now holds of it (after a write or a read)."""
    run._journal = snapshot


def pending_write(
    run: RunState, written: RunState, encoded: Encoded, write: Awaitable[object]
) -> PendingCheckpoint:
    """The :class:`PendingCheckpoint` of a durable store's ``write`` of ``written``.

    Once it committed, ``run`` takes the new version and the store remembers the snapshot
    :func:`encode` took, not the run's lists as they are then: the step loop may have grown
    them while the write ran (write-behind).
    """

    def written_now() -> None:
        remember(run, encoded.snapshot)
        adopt(run, written)

    return PendingCheckpoint(run, write, written_now)


def decode(
    head: str | bytes, rows: Iterable[tuple[str, str]], *, store: object | None = None
) -> RunState:
    """The run of ``head`` with the ``(list, body)`` rows (in ``seq`` order) put back in.

    With ``store``, the run remembers what that store holds (its next save appends).
    """
    run = RunState.model_validate_json(head)
    grouped: dict[str, list[str]] = {}
    for name, body in rows:
        grouped.setdefault(name, []).append(body)
    if "messages" in grouped:
        run.messages = GrowingList(parse_messages(grouped["messages"]))
    if "steps" in grouped:
        run.steps = GrowingList(_STEPS.validate_json(_array(grouped["steps"])))
    if "spans" in grouped and run.trace is not None:
        run.trace.spans = GrowingList(_SPANS.validate_json(_array(grouped["spans"])))
    if store is not None:
        # Lists the head still held (a document from before rows) are not rows yet: the
        # next save must write them, so the snapshot says nothing is stored of them.
        held = {
            name: Held.of(now) if name in grouped else Held([], 0, None)
            for name, now in current(run).items()
        }
        bodies = None
        if verifying():
            bodies = {name: list(grouped.get(name, [])) for name in LISTS}
        remember(run, Snapshot(store, run.version, held, bodies))
    return run


def encode_item(item: Any) -> str:
    """One element's JSON, always valid text (see :mod:`astromesh.text_boundary`)."""
    if isinstance(item, BaseModel):
        try:
            # The model's serializer itself: what model_dump_json() gives without the two
            # wrappers (Message's own override, then dump_json's), ~2.5 µs of ~5 an element.
            return item.__pydantic_serializer__.to_json(item).decode()
        except (PydanticSerializationError, UnicodeEncodeError):
            return dump_json(item, item.model_dump_json)  # invalid text set after validation
    try:
        return to_json(item).decode()
    except (PydanticSerializationError, UnicodeEncodeError, UnicodeDecodeError):
        return to_json(repair_value(item)).decode()


def _snapshot_of(run: RunState, store: object, replacing: int | None) -> Snapshot | None:
    known: Snapshot | None = run._journal
    if known is None or known.store is not store or known.version != replacing:
        return None
    return known


def _verify_unchanged(run_id: str, name: str, stored: Sequence[Any], bodies: list[str]) -> None:
    for index, (item, body) in enumerate(zip(stored, bodies, strict=False)):
        if encode_item(item) != body:
            raise AssertionError(
                f"run {run_id!r}: {name}[{index}] was changed in place after it was stored; "
                "stored elements must be replaced, not mutated (astromesh.stores._journal)"
            )


def parse_messages(bodies: Sequence[str]) -> list[Message]:
    """Messages from their stored JSON, parsed as one array: one call into pydantic's
    parser instead of one per message (the run's messages here, a session's history in the
    history stores)."""
    return _MESSAGES.validate_json(_array(bodies)) if bodies else []


def _array(bodies: Sequence[str]) -> str:
    return f"[{','.join(bodies)}]"
