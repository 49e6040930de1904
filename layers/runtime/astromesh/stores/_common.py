"""Helpers every durable backend shares, so SQLite, Redis and PostgreSQL encode alike."""

from __future__ import annotations

from datetime import UTC, datetime

from astromesh.errors import ConflictError
from astromesh.runs.state import RunState, utcnow


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to already be UTC (as ``utcnow`` makes)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def sortable_timestamp(moment: datetime) -> str:
    """Fixed-width UTC text whose string order is the time order (for SQLite columns)."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def created_copy(run: RunState) -> RunState:
    """The document ``create`` stores: version 1, ``updated_at`` now.

    The caller's object is only updated (with :func:`adopt`) once the write succeeded, so a
    failed create leaves it untouched.
    """
    return run.model_copy(update={"version": 1, "updated_at": utcnow()})


def saved_copy(run: RunState) -> RunState:
    """The document ``save`` stores: the version the caller read plus one, ``updated_at`` now."""
    return run.model_copy(update={"version": run.version + 1, "updated_at": utcnow()})


def adopt(run: RunState, written: RunState) -> RunState:
    """Copy the store-assigned fields of ``written`` onto the caller's ``run`` and return it."""
    run.version = written.version
    run.updated_at = written.updated_at
    return run


def conflict(run_id: str, stored: int, expected: int) -> ConflictError:
    """The error for a lost compare-and-swap, worded like the in-memory store's."""
    return ConflictError(
        f"run {run_id!r} was modified concurrently (stored version {stored}, writer had {expected})"
    )
