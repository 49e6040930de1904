"""Action results kept beside the run, and the previews the run document holds instead.

A tool can return megabytes (a web page, a file). The run document is loaded and saved at
every step, and on Step Functions by every Lambda task, so it must stay small however large
the results: the full text goes to the run store (``RunStore.put_result``), the run keeps a
preview with ``truncated=True``, and a message built from a preview carries
``content_ref=<call id>``. Right before a model call the preview is swapped back for the full
text (:meth:`RunResults.resolve`), so the model sees exactly what it would have seen anyway.

Both executors go through this module, which is why they record identical steps.
"""

from __future__ import annotations

from collections.abc import Sequence

from astromesh.models.types import Message
from astromesh.runs.state import ActionResult, RunState
from astromesh.stores.base import PendingCheckpoint, RunStore

PREVIEW_LIMIT = 8 * 1024
"""Results longer than this many characters are kept in the run as a preview of this size."""


def preview(result: ActionResult, limit: int = PREVIEW_LIMIT) -> ActionResult:
    """``result`` as the run keeps it: unchanged when short, else a marked preview.

    The preview is a pure function of the full result (and ``limit``), so :func:`expand` can
    find it again inside whatever message a pattern built from it.
    """
    if result.truncated or len(result.content) <= limit:
        return result
    return result.model_copy(update={"content": _preview_text(result, limit), "truncated": True})


def expand(message: Message, full: ActionResult, limit: int = PREVIEW_LIMIT) -> Message:
    """``message`` with the preview of ``full`` replaced by its whole text."""
    shown = _preview_text(full, limit)
    if shown not in message.content:
        return message
    return message.model_copy(
        update={"content": message.content.replace(shown, full.content, 1), "content_ref": None}
    )


def _preview_text(result: ActionResult, limit: int) -> str:
    hidden = len(result.content) - limit
    return (
        f"{result.content[:limit]}\n[... {hidden} more characters; the full result of "
        f"{result.call_id} is kept with the run]"
    )


class RunResults:
    """One run's results in the store: what executors keep and what model calls resolve.

    Kept results wait in :attr:`unsaved` until the executor's next checkpoint writes them
    with the run (``RunStore.checkpoint``): one write per iteration instead of one per call.
    A checkpoint may be written behind (:meth:`begin_checkpoint`, then
    :meth:`wait_checkpoint`): its results stay readable from here until it committed, and
    return to :attr:`unsaved` if it failed, so the next write carries them.
    """

    def __init__(self, runs: RunStore, run_id: str) -> None:
        self.runs = runs
        self.run_id = run_id
        self.unsaved: list[ActionResult] = []
        self.writing: list[ActionResult] = []
        """The results of the checkpoint in flight."""
        self._pending: PendingCheckpoint | None = None

    def keep(self, result: ActionResult) -> ActionResult:
        """Note the full result for the next checkpoint; return what the run document holds."""
        self.unsaved.append(result)
        return preview(result)

    async def checkpoint(self, run: RunState) -> RunState:
        """Save ``run`` with the results kept since the last checkpoint, as one write."""
        await self.begin_checkpoint(run)
        await self.wait_checkpoint()
        return run

    @property
    def in_flight(self) -> bool:
        """Whether a checkpoint was begun and not yet waited for."""
        return self._pending is not None

    async def begin_checkpoint(self, run: RunState) -> None:
        """Begin saving ``run`` with the results kept since the last checkpoint; the store
        encodes it before this returns. At most one per run: the journal must see the saves
        in order, and each replaces the version the previous one wrote."""
        if self._pending is not None:
            raise RuntimeError(f"run {self.run_id!r} already has a checkpoint in flight")
        self.writing, self.unsaved = self.unsaved, []
        try:
            self._pending = await self.runs.begin_checkpoint(run, self.writing)
        except BaseException:
            self._restore()
            raise

    async def wait_checkpoint(self) -> None:
        """Wait for the checkpoint in flight, if any; raises what the store's write raised
        (the results it carried then wait for the next one)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            await pending.wait()
        except BaseException:
            self._restore()
            raise
        self.writing = []

    def _restore(self) -> None:
        self.unsaved, self.writing = [*self.writing, *self.unsaved], []

    async def load(self, call_ids: Sequence[str]) -> dict[str, ActionResult]:
        """The full results stored, or kept for the next checkpoint (or in flight), for
        ``call_ids`` (missing ones are absent)."""
        waiting = {r.call_id: r for r in (*self.writing, *self.unsaved) if r.call_id in call_ids}
        rest = [c for c in call_ids if c not in waiting]
        return {**(await self.runs.get_results(self.run_id, rest) if rest else {}), **waiting}

    async def resolve(self, messages: Sequence[Message]) -> list[Message]:
        """``messages`` with every ``content_ref`` preview expanded to the full result.

        Reads the store only when some message refers to a result; the run's own messages
        are never modified (the caller gets copies where something changed).
        """
        refs = [m.content_ref for m in messages if m.content_ref]
        if not refs:
            return list(messages)
        full = await self.load(refs)
        return [expand(m, full[m.content_ref]) if m.content_ref in full else m for m in messages]
