"""The step protocol on run ids, for processes that share nothing but the run store.

:class:`LocalExecutor` keeps a run in memory between stages. On Step Functions every stage is
a separate Lambda invocation, possibly in another container, so :class:`StepDriver` exposes
each stage as a call on a run id: load the run, call the same :mod:`astromesh.pipeline` stage
the local loop calls, save with the store's optimistic concurrency, and answer with ids only
(the state machine's payloads never carry conversation text).

The calls are safe to repeat, because Step Functions retries a task whose Lambda failed after
it may already have saved: ``prepare`` of a prepared run, ``step`` while its actions have not
run, ``step`` or ``observe`` of an observed run and ``finalize`` of a finished run do nothing
again and answer as the first time did.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypedDict

from astromesh import pipeline
from astromesh.agent import Agent
from astromesh.errors import AstromeshError, ConflictError
from astromesh.executors.results import RunResults, preview
from astromesh.orchestration.base import (
    Act,
    Decision,
    Fail,
    Finish,
    decision_from_dict,
    decision_to_dict,
)
from astromesh.runs.events import EventSink, discard
from astromesh.runs.state import ActionResult, RunState, RunStatus
from astromesh.stores.base import RunStore
from astromesh.telemetry import genai
from astromesh.telemetry.metrics import Metrics, NullMetrics
from astromesh.telemetry.scope import begin_trace, keep_spans, run_scope, take_spans

AgentSource = Callable[[str, str], Awaitable[Agent]]
"""Gives the built agent of a run from its agent's name and its tenant: a registered agent is
its tenant's, so the name alone could find another tenant's namesake
(:func:`astromesh.channels.control_plane.agent_source`; :func:`folder_agents` for a runtime
serving its agents folder only)."""


def folder_agents(get: Callable[[str], Awaitable[Agent]]) -> AgentSource:
    """An :data:`AgentSource` over the agents folder (``AgentRuntime.get``), which every
    tenant shares: the tenant does not change which agent a name is."""

    async def agent(name: str, _tenant: str) -> Agent:
        return await get(name)

    return agent


Next = Literal["act", "finish", "fail"]

CANCELLED = Fail("cancelled by request", status=RunStatus.CANCELLED, code="cancelled")
"""The decision a cancelled run ends with (the same words as the local loop's)."""

TRANSIENT_CODES = frozenset({"provider_unavailable", "provider_timeout"})
"""Fail codes of a step whose model call may well succeed a little later."""

RETRY_MARGIN_SECONDS = 10.0
"""A transient failure is handed to the state machine's Retry only with this much run time
left; closer to the deadline the run fails at once, as it does locally."""

RUN_AGENTS = 256
"""Runs whose agent a driver remembers (the most recently used ones; see
:meth:`StepDriver._agent`)."""


class ActionRef(TypedDict):
    """One item of the state machine's Map: which call of which run to execute."""

    run_id: str
    call_id: str


class StepAnswer(TypedDict):
    """What ``step`` tells the state machine: where to go next and, for ``act``, the calls."""

    next: Next
    actions: list[ActionRef]


class ActAnswer(TypedDict):
    """What ``act`` tells the state machine (the Map collects these for ``observe``)."""

    call_id: str
    ok: bool
    child_run_id: str | None
    """The child run an agent tool started, recorded in the call's ``tool_call`` step."""


class TransientProviderFailure(AstromeshError):
    """The step's model call failed for a reason that may pass (every candidate was down).

    Raised instead of failing the run so that the state machine's ``Retry``, which matches
    this class name, runs the step again after a backoff: durable, and without a Lambda
    waiting. The ``Fail`` the run gets if the retries run out is already stored in
    ``run.decision``, so ``finalize`` ends the run with the same reason as the local loop.
    """

    code = "provider_unavailable"
    status = 503


class StepDriver:
    """Drives runs stage by stage, each call on a run id; the state lives only in ``runs``.

    Args:
        runs: the run store every stage loads from and saves to.
        agents: gives the built agent of a run, by its agent's name and its tenant.
        emit: where run events go (nowhere by default: on AWS a channel pushes them).
        run_child: how agent tools start child runs (``AgentRuntime.run_child``); the child
            runs in-process, inside the ``act`` call that started it.
        metrics: where a run ended without its agent is counted (``AgentRuntime.metrics``);
            a run with its agent is counted by the agent's own sink, in ``finalize``.
    """

    def __init__(
        self,
        runs: RunStore,
        agents: AgentSource,
        *,
        emit: EventSink = discard,
        run_child: pipeline.ChildRunStarter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.runs = runs
        self.agents = agents
        self.emit = emit
        self.run_child = run_child
        self.metrics = metrics or NullMetrics()
        self._run_agents: OrderedDict[tuple[str, str, str], Agent] = OrderedDict()

    async def _agent(self, run: RunState) -> Agent:
        """The agent of ``run``: looked up (registry, then folder) at the run's first task in
        this container, then kept for its later tasks here.

        A run's tasks (prepare, every step, every tool call, finalize) would otherwise each
        ask the registry for the agent's current revision: a store round trip per task for
        a document that rarely changes. Kept by run id (with its tenant and agent name), so
        one tenant's run is never served another tenant's namesake; a run started after an
        agent is registered again looks it up afresh and gets the new document, while a run
        already going here keeps the agent it started with in this container (the document
        its history was made with).
        """
        key = (run.id, run.tenant, run.agent)
        agent = self._run_agents.get(key)
        if agent is None:
            agent = await self.agents(run.agent, run.tenant)
            self._run_agents[key] = agent
            if len(self._run_agents) > RUN_AGENTS:
                self._run_agents.popitem(last=False)
        else:
            self._run_agents.move_to_end(key)
        return agent

    # -- prepare ------------------------------------------------------------------------------

    async def prepare(self, run_id: str) -> dict[str, str]:
        """Build the conversation (system prompt, history, query) and save it.

        A known failure (a prompt that cannot render) is stored as the run's ``fail``
        decision, which the next ``step`` returns, as the local loop would end the run.
        """
        run = await self.runs.get(run_id)
        if run.messages or run.decision is not None or run.status.is_terminal:
            return {"run_id": run_id}
        with run_scope(run):
            try:  # an agent that cannot be found or built here fails the run, like a bad prompt
                agent = await self._agent(run)
                with run_scope(run, agent):
                    await pipeline.prepare(run, agent, self.emit)
            except AstromeshError as exc:
                _fail_on(run, exc)
            await self._save(run)
        return {"run_id": run_id}

    # -- step ---------------------------------------------------------------------------------

    async def step(self, run_id: str, acted: Sequence[ActAnswer] | None = None) -> StepAnswer:
        """Observe the last step's calls (when that is still to do), then ask the pattern what
        to do next within the run's limits, and store both with one save.

        Observing here rather than in a task of its own saves the state machine one Lambda
        invocation and one transition per iteration (``acted`` is the Map's output, as for
        :meth:`observe`). The calls are observed only when ``acted`` answers for exactly the
        pending ones: a retried step whose first attempt already saved its next ``act`` has
        new pending calls that have not run (call ids are unique within a run; ``act``
        relies on that too), and answers that decision again.
        """
        run = await self.runs.get(run_id)
        with run_scope(run):  # one scope: the observation's spans are kept with the decision's
            return await self._step(run, acted)

    async def _step(self, run: RunState, acted: Sequence[ActAnswer] | None) -> StepAnswer:
        agent = None
        if acted and _awaits_observation(run) and _answers_pending(run, acted):
            agent = await self._agent(run)
            await self._observe(run, agent, acted)
        decision = _settled_decision(run)
        if decision is None:
            agent = agent or await self._agent(run)
            with run_scope(run, agent):
                # The answer is screened before it is stored (finalize runs in another task).
                decision = await pipeline.screen_answer(run, agent, await self._decide(run, agent))
                if isinstance(decision, Act):
                    run.pending_actions = list(decision.actions)
                run.decision = decision_to_dict(decision)
                await self._save(run)
            if isinstance(decision, Fail) and self._worth_retrying(decision, run, agent):
                raise TransientProviderFailure(decision.reason)
        elif agent is not None:  # observed, and the observation settled the run (a failure)
            with run_scope(run, agent):
                await self._save(run)
        return _answer(run, decision)

    async def _decide(self, run: RunState, agent: Agent) -> Decision:
        if run.status is RunStatus.CANCELLED:
            return CANCELLED
        limit = pipeline.check_limits(run, agent)
        if limit is not None:
            return limit
        return await pipeline.step(
            run, agent, self.emit, resolve=RunResults(self.runs, run.id).resolve
        )

    @staticmethod
    def _worth_retrying(decision: Fail, run: RunState, agent: Agent) -> bool:
        return (
            decision.code in TRANSIENT_CODES
            and pipeline.remaining_seconds(run, agent) > RETRY_MARGIN_SECONDS
        )

    # -- act ----------------------------------------------------------------------------------

    async def act(self, run_id: str, call_id: str, *, time_limit: float | None = None) -> ActAnswer:
        """Run one pending tool call and store its full result beside the run.

        Never writes the run document, so the calls of one step run in parallel (one Lambda
        each) without conflicting. The call gets the run's remaining time, or ``time_limit``
        seconds if that is shorter (what is left of the Lambda's own timeout); past it the
        result says so and the run goes on to observe it.
        """
        run = await self.runs.get(run_id)
        stored = await self.runs.get_results(run_id, [call_id])
        if call_id in stored:  # a retried task: the call already ran
            return {"call_id": call_id, "ok": stored[call_id].ok, "child_run_id": None}
        agent = await self._agent(run)
        call = next((c for c in run.pending_actions if c.id == call_id), None)
        if call is None:
            raise LookupError(f"run {run_id!r} has no pending action {call_id!r}")
        seconds = pipeline.remaining_seconds(run, agent)
        if time_limit is not None:
            seconds = min(seconds, time_limit)
        child_run_id = None
        with run_scope(run, agent):
            try:
                [result] = await asyncio.wait_for(
                    pipeline.act(run, agent, [call], self.emit, run_child=self.run_child),
                    timeout=max(seconds, 0.001),
                )
                # act's record of this call (guardrail steps of its result may follow it)
                child_run_id = next(
                    (
                        s.data.get("child_run_id")
                        for s in reversed(run.steps)
                        if s.type == "tool_call"
                    ),
                    None,
                )
            except TimeoutError:
                result = ActionResult(
                    call_id=call.id,
                    name=call.name,
                    ok=False,
                    content=(
                        f"tool '{call.name}' did not finish within {max(seconds, 0):.3g} seconds"
                    ),
                )
            # This process never saves the run: the call's spans travel in its result.
            result = result.model_copy(update={"spans": take_spans(run_id)})
        await self.runs.put_result(run_id, result)
        return {"call_id": call_id, "ok": result.ok, "child_run_id": child_run_id}

    # -- observe ------------------------------------------------------------------------------

    async def observe(
        self, run_id: str, acted: Sequence[ActAnswer] | None = None
    ) -> dict[str, str]:
        """Hand the stored results of the pending calls to the pattern and close the iteration.

        The state machine observes inside :meth:`step`; this stays for executions started on
        a definition that still had an ``Observe`` task (a Standard execution keeps the
        definition it started with). ``acted`` is what the calls' ``act`` answered (the Map's
        output); it carries the ids of child runs into the ``tool_call`` steps.
        """
        run = await self.runs.get(run_id)
        if not _awaits_observation(run):
            return {"run_id": run_id}  # observed already, or the run was cancelled meanwhile
        agent = await self._agent(run)
        with run_scope(run, agent):
            await self._observe(run, agent, acted)
            await self._save(run)
        return {"run_id": run_id}

    async def _observe(
        self, run: RunState, agent: Agent, acted: Sequence[ActAnswer] | None
    ) -> None:
        """Record the pending calls from their stored results and hand them to the pattern
        (in memory: the caller saves). A known failure becomes the run's ``fail`` decision."""
        calls = list(run.pending_actions)
        stored = await self.runs.get_results(run.id, [c.id for c in calls])
        for call_id in sorted(stored):  # the calls' spans, kept with the run once
            if stored[call_id].spans:
                begin_trace(run).keep(stored[call_id].spans)
                stored[call_id] = stored[call_id].model_copy(update={"spans": []})
        results = [
            preview(stored[c.id])
            if c.id in stored
            else ActionResult(
                call_id=c.id, name=c.name, ok=False, content=f"tool '{c.name}' left no result"
            )
            for c in calls
        ]
        with run_scope(run, agent):
            try:
                # The calls' records say whether each tool was permitted, which for an MCP
                # tool is known once its server is loaded: in a container that has not loaded
                # it yet, this is its first use (the run's next step, here too, needs it).
                await agent.tools.ensure_ready()
                children = {a["call_id"]: c for a in acted or () if (c := a.get("child_run_id"))}
                pipeline.record_actions(run, agent, calls, results, child_runs=children)
                pipeline.observe(run, agent, results)
            except AstromeshError as exc:
                _fail_on(run, exc)

    # -- finalize -----------------------------------------------------------------------------

    async def finalize(self, run_id: str, error: dict[str, Any] | None = None) -> dict[str, str]:
        """Settle the run's status and answer, write memory back, save.

        ``error`` is the state machine's ``{"Error", "Cause"}`` when a task failed for good;
        unless the run already holds its ending (a failure the retries could not cure), it
        ends like an unexpected exception ends a local run.
        """
        run = await self.runs.get(run_id)
        if run.status.is_terminal and run.answer is not None:  # finalized already
            return {"run_id": run_id, "status": run.status.value}
        decision = _final_decision(run, error)
        with run_scope(run):
            try:
                agent = await self._agent(run)
            except AstromeshError as exc:
                # Nothing of the agent's (guardrails, memory) can run without it; the run
                # must still end, or its caller would wait on it forever.
                stopped = (
                    decision if isinstance(decision, Fail) else Fail(exc.message, code=exc.code)
                )
                pipeline.stop(run, stopped, answer="")
                self.metrics.run_finished(run)
                genai.end_run(run, None)
            else:
                with run_scope(run, agent):
                    await pipeline.finalize(
                        run, agent, decision, self.emit, run_child=self.run_child
                    )
            await self._save_final(run)
        self._run_agents.pop((run.id, run.tenant, run.agent), None)  # no task of it follows
        return {"run_id": run_id, "status": run.status.value}

    # -- saving -------------------------------------------------------------------------------

    async def _save(self, run: RunState) -> None:
        """Save; if a cancel request won the race, keep this stage's work and end as cancelled.

        This mirrors the local loop, whose checkpoint turns the same conflict into a cancel
        that still finalizes what the run had done.
        """
        keep_spans(run)
        try:
            await self.runs.save(run)
        except ConflictError:
            stored = await self.runs.get(run.id)
            if stored.status is not RunStatus.CANCELLED:
                raise
            run.version = stored.version
            run.status = RunStatus.CANCELLED
            run.pending_actions = []
            run.decision = decision_to_dict(CANCELLED)
            await self.runs.save(run)

    async def _save_final(self, run: RunState) -> None:
        """The final save wins over a concurrent cancel: the run did finish."""
        keep_spans(run)
        try:
            await self.runs.save(run)
        except ConflictError:
            run.version = (await self.runs.get(run.id)).version
            await self.runs.save(run)


def _settled_decision(run: RunState) -> Decision | None:
    """The stored decision ``step`` must answer again instead of asking the pattern.

    That is an ending (finish, or a fail other than one still worth retrying) or an ``act``
    whose calls are not observed yet (a retried step must not call the model twice).
    """
    if run.decision is None:
        return None
    decision = decision_from_dict(run.decision, run.pending_actions)
    if isinstance(decision, Act):
        return decision if run.pending_actions else None
    if isinstance(decision, Fail) and decision.code in TRANSIENT_CODES:
        return None
    return decision


def _awaits_observation(run: RunState) -> bool:
    """The run's last step decided to act and its calls' results are not observed yet."""
    return bool(run.pending_actions) and isinstance(_settled_decision(run), Act)


def _answers_pending(run: RunState, acted: Sequence[ActAnswer]) -> bool:
    """``acted`` is the Map's output for the run's pending calls (not an earlier step's)."""
    return sorted(a["call_id"] for a in acted) == sorted(c.id for c in run.pending_actions)


def _fail_on(run: RunState, exc: AstromeshError) -> None:
    """End the run on a known failure, as the local loop does (``step`` answers ``fail``)."""
    run.decision = decision_to_dict(Fail(exc.message, code=exc.code))


def _final_decision(run: RunState, error: dict[str, Any] | None) -> Finish | Fail:
    if run.decision is not None and run.decision["type"] != "act":
        decision = decision_from_dict(run.decision)
        assert not isinstance(decision, Act)
        return decision
    if run.status is RunStatus.CANCELLED:
        return CANCELLED
    name = (error or {}).get("Error", "no decision")
    return Fail(f"internal error: {name}", code="internal_error")


def _answer(run: RunState, decision: Decision) -> StepAnswer:
    if isinstance(decision, Act):
        actions = [ActionRef(run_id=run.id, call_id=call.id) for call in decision.actions]
        return {"next": "act", "actions": actions}
    return {"next": "finish" if isinstance(decision, Finish) else "fail", "actions": []}
