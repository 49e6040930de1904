"""A Lambda init without the cyclic garbage collector, then its objects frozen.

A function's init imports FastAPI, pydantic and the runtime and builds the app: some hundred
thousand objects, almost none of them garbage. CPython's cyclic collector runs whenever
allocations pass its thresholds, so during that init it walks the growing heap again and
again (about a fifth of the ``api`` function's init here, measured with ``bench/ingress.py``)
to find nothing. :func:`init_phase` turns it off for the init, turns it back on, and
``gc.freeze()``\\ s what the init built: those objects live as long as the container, and a
frozen object is never scanned again, so the warm invocations' collections stay short too.
Reference counting still frees everything that is not in a cycle while the collector is off.

Stdlib only: a handler imports this before anything heavy.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def init_phase() -> Iterator[None]:
    """Run the block (a handler's imports and module-level setup) with the cyclic collector
    off; afterwards it is on again, and everything alive then is frozen. An init that fails
    turns it back on too (Lambda reports the failure and starts a new container)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.freeze()
