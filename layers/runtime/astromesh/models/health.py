"""Health checks of the model candidates: lazy, before a call, where they are configured.

``health_check_interval`` (a ProviderConfig entry's, or an agent's
``spec.model.routing.health_check_interval``, which wins; see
:func:`astromesh.models.factory.build_model`) is the age after which the router wants fresh
evidence that a backend is up before sending it a request. Processes here are often Lambda
instances, frozen between invocations: a background loop would not run while frozen and must
not keep an invocation from finishing. So the check is *lazy*, made by the router on the
request path, and only when it is worth a round trip:

- Before calling a candidate whose health checks are configured, the router probes it when
  (a) the circuit breaker just admitted the call as the half-open *trial* (a probe with a
  short timeout is a cheaper trial than a whole chat request to a backend that may still
  hang), or (b) the newest evidence that it is up is older than the interval, or missing (a
  cold instance, a thawed one after a long freeze).
- Evidence is a passed probe or a call the backend *answered* in this process (a success, a
  4xx, a 429): on a busy instance calls keep it fresh and no probe is ever made. A transport
  failure (refused, timed out, cut off) drops it, so the next request probes (short timeout)
  instead of paying a whole request timeout.
- The probe is :meth:`~astromesh.models.base.Model.probe`: ``GET`` of the provider's cheap
  endpoint (``/v1/models`` for OpenAI-compatible servers, ``/health`` at the root for vLLM,
  llama.cpp server and TGI, ``/api/tags`` for Ollama) with :data:`PROBE_TIMEOUT` (or the
  provider's own timeout if shorter). Unhealthy means unreachable, too slow, or a 5xx/408;
  other 4xx answers are not held against a model (its gateway may not expose the endpoint).
  Concurrent requests share one probe per candidate. A healthy probe warms the connection
  pool that the call then uses.
- A failed probe skips the candidate as a retryable failure would: it counts toward the
  circuit breaker (on a trial it reopens the circuit), and the router moves to the next one.

Evidence lives in this process (wall clock: a frozen instance's monotonic clock is not
guaranteed to advance, and a step back in time only makes evidence look stale). The circuit
breaker is what is shared between instances.

For long-lived processes (the local server), :meth:`HealthChecks.running` also probes every
known candidate in the background when its evidence is due, so requests find it fresh. It is
an ``async with`` around the server's lifespan; nothing starts it implicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable

from astromesh.models.base import Model
from astromesh.models.breaker import CircuitBreaker
from astromesh.models.strategies import candidate_key

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0
"""Seconds a probe may take: a healthy health endpoint answers in milliseconds, and a probe
exists to avoid waiting out a full request timeout."""

MIN_TICK = 1.0
"""Shortest pause of the background loop between rounds, in seconds."""


class HealthChecks:
    """Health evidence per candidate, and the probes that renew it.

    One instance is shared by every router of a runtime (like the circuit breaker), so two
    agents calling one backend probe it once.

    Args:
        clock: seconds, wall clock; tests pass a fake one to step through intervals.
        probe_timeout: the longest a probe may take.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.time, probe_timeout: float = PROBE_TIMEOUT
    ) -> None:
        self._clock = clock
        self.probe_timeout = probe_timeout
        self._seen: dict[str, float] = {}
        self._probed: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Task[bool]] = {}
        self._models: weakref.WeakValueDictionary[str, Model] = weakref.WeakValueDictionary()
        self._breakers: dict[str, CircuitBreaker] = {}
        self.probes = 0
        """Probes made so far (for tests and benchmarks)."""

    def register(self, models: Iterable[Model], breaker: CircuitBreaker | None = None) -> None:
        """Candidates the background loop looks after, and the breaker its failed probes
        count toward (each router registers its own, on its first call)."""
        for model in models:
            if model.settings.health_check_interval is not None:
                key = candidate_key(model)
                self._models[key] = model
                if breaker is not None:
                    self._breakers[key] = breaker

    # -- what the router asks -----------------------------------------------------------------

    def due(self, model: Model, key: str, *, trial: bool = False) -> bool:
        """Whether ``model`` must be probed before this call (see the module docstring)."""
        interval = model.settings.health_check_interval
        if interval is None:
            return False
        if trial:
            return True
        seen = self._seen.get(key)
        if seen is None:
            return True
        age = self._clock() - seen
        return age >= interval or age < 0

    def observed_up(self, key: str) -> None:
        """The backend answered a call: evidence, as good as a probe."""
        self._seen[key] = self._clock()

    def forget(self, key: str) -> None:
        """The backend could not be reached: the next call probes first."""
        self._seen.pop(key, None)

    async def probe(self, model: Model, key: str) -> bool:
        """Probe ``model`` now, sharing a probe already running for it on this loop."""
        loop = asyncio.get_running_loop()
        pending = self._inflight.get(key)
        if pending is None or pending.done() or pending.get_loop() is not loop:
            pending = loop.create_task(self._probe(model, key))
            self._inflight[key] = pending
        # Shielded: a caller cancelled (its run timed out) must not cancel the others' probe.
        return await asyncio.shield(pending)

    async def _probe(self, model: Model, key: str) -> bool:
        self.probes += 1
        timeout = min(self.probe_timeout, model.settings.timeout_seconds)
        try:
            async with asyncio.timeout(timeout):
                healthy = await model.probe(timeout)
        except Exception as exc:  # noqa: BLE001 - any provider's probe: breaking means unhealthy
            logger.debug("provider=<%s> | health probe raised: %r", key, exc)
            healthy = False
        now = self._clock()
        self._probed[key] = now
        if healthy:
            self._seen[key] = now
        else:
            self._seen.pop(key, None)
            logger.warning("provider=<%s> | health probe failed: skipping it", key)
        return healthy

    # -- background, for long-lived processes ------------------------------------------------

    async def probe_due(self) -> float:
        """One background round: probe every registered candidate whose evidence (or last
        probe) is older than its interval; a failed probe counts toward its breaker.

        Returns seconds until the next candidate is due.
        """
        now = self._clock()
        due: list[tuple[str, Model]] = []
        wait = math.inf
        for key, model in list(self._models.items()):
            interval = model.settings.health_check_interval
            assert interval is not None  # only such models are registered
            last = max(self._seen.get(key, -math.inf), self._probed.get(key, -math.inf))
            if now - last >= interval or now < last:
                due.append((key, model))
                wait = min(wait, interval)
            else:
                wait = min(wait, last + interval - now)
        results = await asyncio.gather(*(self.probe(model, key) for key, model in due))
        for (key, _), healthy in zip(due, results, strict=True):
            breaker = self._breakers.get(key)
            if not healthy and breaker is not None:
                await breaker.record_failure(key)
        return wait

    async def run(self) -> None:
        """Probe due candidates until cancelled."""
        while True:
            wait = await self.probe_due()
            await asyncio.sleep(max(MIN_TICK, wait if math.isfinite(wait) else MIN_TICK))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run :meth:`run` in the background for the body of the ``async with`` (a server's
        lifespan); the loop is cancelled on exit. Never use it in a Lambda handler."""
        task = asyncio.get_running_loop().create_task(self.run(), name="health-checks")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = ["MIN_TICK", "PROBE_TIMEOUT", "HealthChecks"]
