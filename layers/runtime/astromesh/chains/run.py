"""Running a finished run's chain: each fired link is a child run of it.

Called by :func:`astromesh.pipeline.finalize` once the run succeeded, with the executor's
child run starter, so the chain runs the same way in-process and on Step Functions (in the
finalize task, as an agent tool's child runs in the tool executor). A child's id is derived
from the run's id and the link (its index, its attempt), so a finalize task that Step
Functions retries finds the children the first attempt started instead of starting them again.

Semantics are upstream's (its docs' "Agent Chaining"):

- every rule is evaluated: a link with ``when`` fires when the template renders ``true``,
  ``1`` or ``yes``; one without ``when`` always fires; the ``default`` one fires only when no
  ``when`` matched;
- ``sequential`` evaluates each guard right before its link (so it can read ``steps`` of the
  links before it); ``parallel`` evaluates every guard first, runs the fired links at once,
  then the default;
- templates see ``output`` (``answer``, ``data``, ``steps`` of this run), ``trigger``
  (``query``, ``session_id``, ``context``), ``steps`` (each link's result by agent name) and
  ``when`` (each guard's value); ``input`` defaults to ``{{ output.answer }}``;
- a failing link is retried (``retry``), bounded by ``timeout_seconds`` per attempt; then
  ``on_error`` decides: ``stop`` (the chain ends, ``failed``), ``continue`` (``partial``), or
  an agent to run instead;
- a chained agent's own chain runs in its own finalize; its links are listed after it, one
  level deeper, ``via`` it.

The run itself stays succeeded whatever its chain does: the answer it produced stands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from astromesh.errors import AstromeshError
from astromesh.prompts.render import PromptTemplate
from astromesh.runs.state import RunState, RunStatus

if TYPE_CHECKING:
    from astromesh.agent import Agent
    from astromesh.config.agent import ChainRetry, ChainSpec, ChainStep

ChildStarter = Callable[[RunState, str, str, str], Awaitable[RunState]]
"""``(parent, agent name, query, key) -> finished child`` (``pipeline.ChildRunStarter``)."""

DEFAULT_INPUT = "{{ output.answer }}"
TRUTHY = frozenset({"true", "1", "yes"})


async def run_chain(run: RunState, agent: Agent, start: ChildStarter | None) -> dict[str, Any]:
    """Run the links of ``run``'s chain and return upstream's ``chain`` block:
    ``{run_id, status, mode, links}``."""
    chain = agent.config.spec.chain
    assert chain is not None
    runner = _ChainRun(run, chain, start)
    await runner.execute()
    return runner.block()


class _ChainRun:
    def __init__(self, run: RunState, chain: ChainSpec, start: ChildStarter | None) -> None:
        self.run = run
        self.chain = chain
        self.start = start
        self.links: list[dict[str, Any]] = []
        self.stopped = False
        self.errors = False
        self.variables: dict[str, Any] = {
            "output": {
                "answer": run.answer or "",
                "data": run.data,
                "steps": [step.model_dump(mode="json") for step in run.steps],
            },
            "trigger": {
                "query": run.query,
                "session_id": run.session_id,
                "context": run.context or {},
            },
            "steps": {},
            "when": {},
        }

    async def execute(self) -> None:
        steps = list(enumerate(self.chain.on_complete))
        rules = [(i, s) for i, s in steps if not s.default]
        default = next(((i, s) for i, s in steps if s.default), None)
        if self.chain.mode == "parallel":
            guards = [(i, s, self._guard(i, s)) for i, s in rules]
            fired = [(i, s) for i, s, fires in guards if fires is True]
            results = await asyncio.gather(*(self._attempts(i, s) for i, s in fired))
            outcomes = dict(zip([i for i, _ in fired], results, strict=True))
            for i, s, fires in guards:
                if fires is True:
                    await self._settle(i, s, *outcomes[i])
                elif fires is False:
                    self._skipped(s, "condition_false")
        else:
            for i, s in rules:
                if self.stopped:
                    self._skipped(s, "upstream_stopped")
                    continue
                fires = self._guard(i, s)
                if fires is True:
                    await self._settle(i, s, *await self._attempts(i, s))
                elif fires is False:
                    self._skipped(s, "condition_false")
        if default is not None:
            i, s = default
            matched = any(self.variables["when"].get(r.agent) for _, r in rules if r.when)
            if self.stopped:
                self._skipped(s, "upstream_stopped")
            elif matched:
                self._skipped(s, "condition_false")
            else:
                await self._settle(i, s, *await self._attempts(i, s))

    def block(self) -> dict[str, Any]:
        status = "failed" if self.stopped else "partial" if self.errors else "completed"
        return {
            "run_id": self.run.id,
            "status": status,
            "mode": self.chain.mode,
            "links": self.links,
        }

    # -- one link -----------------------------------------------------------------------------

    def _guard(self, index: int, step: ChainStep) -> bool | None:
        """Whether the link fires (``None``: its guard failed, recorded as the link's error)."""
        if step.when is None:
            return True
        try:
            rendered = self._render(step.when, f"spec.chain.on_complete[{index}].when")
        except AstromeshError as exc:
            self._failed(step.agent, f"condition failed: {exc.message}")
            self.stopped = self.stopped or step.on_error != "continue"
            return None
        fires = rendered.strip().lower() in TRUTHY
        self.variables["when"][step.agent] = fires
        return fires

    def _render(self, source: str, field: str) -> str:
        return PromptTemplate(field, source, field=field).render(self.variables)

    async def _attempts(self, index: int, step: ChainStep) -> tuple[str, RunState | str, float]:
        """``(query, finished child or error message, seconds)`` of the link's attempts."""
        started = time.perf_counter()
        try:
            query = self._render(
                step.input or DEFAULT_INPUT, f"spec.chain.on_complete[{index}].input"
            )
        except AstromeshError as exc:
            return "", f"input failed: {exc.message}", time.perf_counter() - started
        outcome = await self._child(step, step.agent, query, f"chain:{index}")
        return query, outcome, time.perf_counter() - started

    async def _child(self, step: ChainStep, name: str, query: str, key: str) -> RunState | str:
        """The finished child of the last attempt, or why the last attempt failed."""
        if self.start is None:
            return "this executor does not run child agents"
        retry = step.retry
        attempts = retry.max_attempts if retry else 1
        error = ""
        for attempt in range(1, attempts + 1):
            try:
                child = await asyncio.wait_for(
                    self.start(self.run, name, query, f"{key}#{attempt}"),
                    timeout=step.timeout_seconds,
                )
            except TimeoutError:
                error = f"timed out after {step.timeout_seconds:g}s"
            except AstromeshError as exc:
                error = exc.message
            else:
                if child.status is RunStatus.SUCCEEDED:
                    return child
                error = f"run {child.id} {child.status.value}: {child.error or 'no answer'}"
            if attempt < attempts and retry is not None:
                await asyncio.sleep(_delay(retry, attempt))
        return error

    async def _settle(
        self, index: int, step: ChainStep, query: str, outcome: RunState | str, seconds: float
    ) -> None:
        """Record the link's outcome; on failure apply ``on_error``."""
        if isinstance(outcome, RunState):
            self._succeeded(step.agent, outcome, seconds)
            return
        self._failed(step.agent, outcome)
        if step.on_error == "continue":
            return
        if step.on_error == "stop" or not query:
            self.stopped = True
            return
        started = time.perf_counter()  # on_error names an agent to run instead
        instead = await self._child(step, step.on_error, query, f"chain:{index}:on_error")
        if isinstance(instead, RunState):
            self._succeeded(step.on_error, instead, time.perf_counter() - started)
            self.links[-1]["instead_of"] = step.agent
        else:
            self._failed(step.on_error, instead)
            self.stopped = True

    def _succeeded(self, name: str, child: RunState, seconds: float) -> None:
        link: dict[str, Any] = {
            "agent": name,
            "depth": 1,
            "via": None,
            "status": "success",
            "answer": child.answer or "",
            "run_id": child.id,
            "duration_ms": round(seconds * 1000.0, 3),
        }
        if child.data is not None:
            link["data"] = child.data
        self.links.append(link)
        result = {"answer": child.answer or "", "data": child.data, "status": "success"}
        self.variables["steps"][name] = {**result, "output": result}
        for nested in (child.chain or {}).get("links", []):  # the child's own chain
            self.links.append(
                {**nested, "depth": nested["depth"] + 1, "via": nested["via"] or name}
            )
            self.errors = self.errors or nested.get("status") == "error"

    def _failed(self, name: str, error: str) -> None:
        """Record ``name``'s link (a chained agent, or the agent run instead) as failed."""
        self.errors = True
        self.links.append(
            {"agent": name, "depth": 1, "via": None, "status": "error", "error": error}
        )
        result = {"answer": "", "data": None, "status": "error", "error": error}
        self.variables["steps"][name] = {**result, "output": result}

    def _skipped(self, step: ChainStep, reason: str) -> None:
        self.links.append(
            {"agent": step.agent, "depth": 1, "via": None, "status": "skipped", "reason": reason}
        )


def _delay(retry: ChainRetry, attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``."""
    base = retry.initial_delay_seconds
    if retry.backoff == "fixed":
        return base
    if retry.backoff == "linear":
        return base * attempt
    return base * 2 ** (attempt - 1)
