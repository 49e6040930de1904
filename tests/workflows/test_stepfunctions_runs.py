"""The same workflows in-process and on the workflow machine reach the same step outputs:
upstream's example, approvals (answered by task token on AWS), retries and on_error,
parallel branches. On AWS every agent step is a child execution of the agent Standard
machine and every approval a ``.waitForTaskToken`` task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from astromesh.errors import ConflictError
from astromesh.stores.sqlite import SQLiteBackend
from astromesh.workflows import (
    Approved,
    Rejected,
    StepStatus,
    WorkflowRun,
    WorkflowStatus,
    start_run,
)
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.stepfunctions import LocalStepFunctions, state_payloads
from tests.workflows.documents import LEAD_QUALIFICATION, steps
from tests.workflows.stepfunctions_support import Side, outcome

SCORE = {"score": {"type": "integer"}}


@pytest.fixture
def servers() -> Iterator[Callable[[], list[ScriptedOpenAIServer]]]:
    with ExitStack() as stack:
        yield lambda: [stack.enter_context(ScriptedOpenAIServer()) for _ in range(2)]


@pytest.fixture
async def local(tmp_path: Path, servers) -> AsyncIterator[Side]:
    state = SQLiteBackend(tmp_path / "local.db")
    yield Side(tmp_path / "local-agents", state, servers())
    await state.close()


@pytest.fixture
async def aws(tmp_path: Path, servers, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Side]:
    """The machine's side; its functions find the agents and the store through the env."""
    agents_dir, db = tmp_path / "aws-agents", tmp_path / "aws.db"
    monkeypatch.setenv("ASTROMESH_AGENTS_DIR", str(agents_dir))
    monkeypatch.setenv("ASTROMESH_STATE_BACKEND", "sqlite")
    monkeypatch.setenv("ASTROMESH_STATE_PATH", str(db))
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    state = SQLiteBackend(db)
    with LocalStepFunctions() as sfn:
        yield Side(agents_dir, state, servers(), sfn)
    await state.close()


def both(local: Side, aws: Side, prepare: Callable[[Side], Any]) -> None:
    for side in (local, aws):
        side.agents_dir.mkdir(parents=True, exist_ok=True)
        prepare(side)


async def run_to_end(side: Side, name: str, trigger: dict[str, Any]) -> WorkflowRun:
    async with side.engine() as engine:
        started = await engine.start(name, trigger, tenant="default", executor=side.executor)
        return await side.finished(engine, started.id)


# -- upstream's example --------------------------------------------------------------------


@pytest.mark.parametrize("score", [9, 3])
async def test_upstream_example_reaches_the_same_steps_on_both(local, aws, score):
    def prepare(side: Side) -> None:
        side.agent("web-researcher")
        side.agent("sales-qualifier", output_schema=SCORE)
        side.agent("email-composer")
        side.workflow("lead-qualification", LEAD_QUALIFICATION)
        side.push(0, Reply("ACME builds rockets."), Reply(f'{{"score": {score}}}'))
        side.push(0, Reply("Mail sent."))

    both(local, aws, prepare)
    trigger = {"query": "acme corp", "id": "7"}
    on_local = await run_to_end(local, "lead-qualification", trigger)
    on_aws = await run_to_end(aws, "lead-qualification", trigger)

    assert outcome(on_aws) == outcome(on_local)
    assert on_aws.status is WorkflowStatus.COMPLETED
    assert on_aws.steps["qualify"].data == {"score": score}
    if score > 7:
        assert on_aws.steps["notify"].output == "Mail sent."
        assert on_aws.steps["log-and-skip"].status is StepStatus.SKIPPED
    else:  # the tool step ran, on the tool executor
        assert on_aws.steps["notify"].status is StepStatus.PENDING
        assert on_aws.steps["log-and-skip"].status is StepStatus.SUCCEEDED
    # ids, not conversations: every state's input and output stays small (the limit: 256 KB)
    sizes = [size for _s, _k, size in state_payloads(aws.sfn.history(on_aws.execution_arn))]
    print(f"largest state payload: {max(sizes)} bytes over {len(sizes)} state payloads")
    assert max(sizes) < 2048
    agents = ("research", "qualify", "notify") if score > 7 else ("research", "qualify")
    children = aws.sfn.client.list_executions(stateMachineArn=aws.sfn.standard_arn)
    assert sorted(e["name"] for e in children["executions"]) == sorted(
        on_aws.steps[s].child_run_id for s in agents
    )


# -- approvals -----------------------------------------------------------------------------

APPROVAL = steps(
    """    - name: draft
      agent: writer
    - name: review
      approval:
        prompt: "Send {{ steps.draft.output }}?"
        approver: ana
        timeout_seconds: 600
        on_reject: revise
    - name: send
      agent: writer
      input: "send {{ steps.draft.output }}"
    - name: done
      switch:
        - default: true
          goto: finish
    - name: revise
      agent: writer
      input: "revise: {{ steps.review.output.comment }}"
    - name: finish
      wait:
        duration_seconds: 0
""",
    name="reviewed",
)


async def decided(side: Side, decision: Approved | Rejected) -> tuple[WorkflowRun, WorkflowRun]:
    """Start ``reviewed``, wait for its approval, decide; the suspended and the ended run."""
    async with side.engine() as engine:
        started = await engine.start("reviewed", {"query": "write"}, tenant="default",
                                     executor=side.executor)  # fmt: skip
        waiting = await side.suspended(engine, started.id)
        assert waiting.status is WorkflowStatus.AWAITING_APPROVAL
        await engine.decide(waiting, decision)
        return waiting, await side.finished(engine, started.id)


def prepare_review(side: Side) -> None:
    side.agent("writer")
    side.workflow("reviewed", APPROVAL)
    side.push(0, Reply("the draft"), Reply("done"))


async def test_approve_sends_the_task_token_success_and_the_run_completes(local, aws):
    both(local, aws, prepare_review)
    approve = Approved(approver="ana", comment="ok")
    _, on_local = await decided(local, approve)
    waiting, on_aws = await decided(aws, approve)

    assert waiting.pending_approval.prompt == "Send the draft?"
    assert waiting.pending_approval.task_token  # stored by the waitForTaskToken task
    assert outcome(on_aws) == outcome(on_local)
    assert on_aws.status is WorkflowStatus.COMPLETED
    assert on_aws.steps["review"].output == {"approved": True, "approver": "ana", "comment": "ok"}
    assert on_aws.steps["send"].output == "done"
    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in aws.sfn.history(on_aws.execution_arn)
        if "stateEnteredEventDetails" in e
    ]
    assert entered.count("AwaitApproval") == 1
    async with aws.engine() as engine:  # answered once: the token no longer waits
        with pytest.raises(ConflictError):
            await engine.executors["stepfunctions"].resume_approval(waiting, approve)


async def test_reject_follows_on_reject_on_both(local, aws):
    both(local, aws, prepare_review)
    reject = Rejected(approver="ana", comment="too long")
    _, on_local = await decided(local, reject)
    _, on_aws = await decided(aws, reject)

    assert outcome(on_aws) == outcome(on_local)
    assert on_aws.status is WorkflowStatus.COMPLETED
    assert on_aws.steps["review"].status is StepStatus.REJECTED
    assert on_aws.steps["review"].output["comment"] == "too long"
    assert on_aws.steps["send"].status is StepStatus.PENDING
    assert aws.servers[0].pending == 0  # "revise: too long" took the second reply


async def test_an_approval_past_its_timeout_times_out_on_the_machine(aws):
    aws.agents_dir.mkdir(parents=True)
    aws.agent("writer")
    aws.workflow("hurried", steps(
        """    - name: draft
      agent: writer
    - name: review
      approval:
        prompt: "ok?"
        timeout_seconds: 1
""", name="hurried"))  # fmt: skip
    aws.push(0, Reply("the draft"))
    run = await run_to_end(aws, "hurried", {"query": "go"})

    assert run.status is WorkflowStatus.TIMED_OUT
    assert run.steps["review"].status is StepStatus.TIMED_OUT
    described = aws.sfn.client.describe_execution(executionArn=run.execution_arn)
    assert described["status"] == "FAILED"  # counted by the ExecutionsFailed alarm


async def test_an_approval_not_yet_waiting_on_the_machine_is_a_conflict(aws):
    """A decision before the machine stored the token changes nothing (409, retry)."""
    aws.agents_dir.mkdir(parents=True)
    aws.agent("writer")
    aws.workflow("reviewed", APPROVAL)
    aws.push(0, Reply("the draft"))
    async with aws.engine() as engine:
        started = await engine.start("reviewed", {"query": "write"}, tenant="default",
                                     executor=aws.executor)  # fmt: skip
        waiting = await aws.suspended(engine, started.id)
        early = waiting.model_copy(deep=True)
        early.pending_approval.task_token = None
        with pytest.raises(ConflictError, match="retry"):
            await engine.executors["stepfunctions"].resume_approval(early, Approved(approver="x"))
        forged = waiting.model_copy(deep=True)
        forged.pending_approval.task_token = "not-a-token"
        with pytest.raises(ConflictError):
            await engine.executors["stepfunctions"].resume_approval(forged, Approved(approver="x"))
        assert (await engine.get_run(started.id)).status is WorkflowStatus.AWAITING_APPROVAL


# -- retries, on_error, parallel -----------------------------------------------------------

RETRYING = steps(
    """    - name: call
      agent: flaky
      retry:
        max_attempts: 2
        backoff: fixed
        initial_delay_seconds: 1
      on_error: recover
    - name: skipped
      agent: flaky
    - name: recover
      agent: fallback
      input: "recover"
""",
    name="retrying",
)


async def test_a_failed_step_is_retried_after_a_wait_then_goes_on_error(local, aws):
    def prepare(side: Side) -> None:
        side.agent("flaky", 0)
        side.agent("fallback", 1)
        side.workflow("retrying", RETRYING)
        side.push(0, Reply("bad request", status=400), Reply("bad request", status=400))
        side.push(1, Reply("handled"))

    both(local, aws, prepare)
    on_local = await run_to_end(local, "retrying", {"query": "go"})
    on_aws = await run_to_end(aws, "retrying", {"query": "go"})

    assert outcome(on_aws) == outcome(on_local)
    call = on_aws.steps["call"]
    assert (call.status, call.attempts) == (StepStatus.FAILED, 2)
    assert on_aws.steps["recover"].output == "handled"
    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in aws.sfn.history(on_aws.execution_arn)
        if "stateEnteredEventDetails" in e
    ]
    assert entered.count("Wait") == 1 and entered.count("RunAgent") == 3


async def test_parallel_branches_reach_the_same_outputs(local, aws):
    def prepare(side: Side) -> None:
        side.agent("left", 0)
        side.agent("right", 1)
        side.workflow("fanout", steps(
            """    - name: both
      parallel:
        - name: a
          agent: left
        - name: b
          agent: right
          on_error: continue
    - name: tally
      tool: json_transform
      arguments:
        data: {a: "{{ steps.a.output }}"}
        expression: "a"
""", name="fanout"))  # fmt: skip
        side.push(0, Reply("from the left"))
        side.push(1, Reply("boom", status=400))

    both(local, aws, prepare)
    on_local = await run_to_end(local, "fanout", {"query": "go"})
    on_aws = await run_to_end(aws, "fanout", {"query": "go"})

    assert outcome(on_aws) == outcome(on_local)
    assert on_aws.status is WorkflowStatus.COMPLETED
    assert on_aws.steps["a"].output == "from the left"
    assert on_aws.steps["b"].status is StepStatus.FAILED
    assert on_aws.steps["both"].output == {"a": "from the left"}


async def test_an_agent_step_over_its_timeout_times_out_like_locally(local, aws):
    """On the machine the child execution's task has the step's TimeoutSeconds; the child
    left unfinished is recorded cancelled, as locally."""

    def prepare(side: Side) -> None:
        side.agent("slow", 0)
        side.agent("fallback", 1)
        side.workflow("patient", steps(
            """    - name: think
      agent: slow
      timeout_seconds: 1
      on_error: fallback
    - name: fallback
      agent: fallback
""", name="patient"))  # fmt: skip
        side.push(0, Reply("too late", delay=4))
        side.push(1, Reply("quick answer"))

    both(local, aws, prepare)
    on_local = await run_to_end(local, "patient", {"query": "go"})
    on_aws = await run_to_end(aws, "patient", {"query": "go"})

    assert outcome(on_aws) == outcome(on_local)
    think = on_aws.steps["think"]
    assert (think.status, think.error_type) == (StepStatus.FAILED, "timeout")
    assert on_aws.steps["fallback"].output == "quick answer"
    history = aws.sfn.history(on_aws.execution_arn)
    assert any(
        e.get("taskTimedOutEventDetails")
        or "States.Timeout" in str(e.get("taskFailedEventDetails"))
        for e in history
    ) or any(e["type"] == "TaskTimedOut" for e in history)


async def test_a_task_failing_for_good_ends_the_run_failed_with_its_error(aws):
    """A run whose stored document no longer validates: Advance fails, the machine's Catch
    goes to FinalizeError, which records the error on the run; the execution fails."""
    aws.agents_dir.mkdir(parents=True)
    aws.agent("writer")
    aws.workflow("reviewed", APPROVAL)
    async with aws.engine() as engine:
        store = await engine.store()
        workflow, origin = await engine.find("reviewed", tenant="default")
        run = start_run(workflow, {"query": "x"}, origin=origin)
        run.document["spec"]["steps"] = "not a list"
        await store.create(run)
        await engine.executors["stepfunctions"].start(workflow, run)
        ended = await aws.finished(engine, run.id)

    assert ended.status is WorkflowStatus.FAILED
    assert ended.error.startswith("ValidationError: ") and "spec.steps" in ended.error
    described = aws.sfn.client.describe_execution(executionArn=ended.execution_arn)
    assert described["status"] == "FAILED"


async def test_an_approval_on_the_machine_notifies_its_webhook_once_its_token_is_stored(aws):
    """The waitForTaskToken task stores the token, then the step's notify webhook is told,
    as in-process; the decision it points at answers the token."""
    from tests.support.http_receivers import Canned, ScriptedHTTPServer

    with ScriptedHTTPServer([Canned(200, {"ok": True})]) as receiver:
        aws.agents_dir.mkdir(parents=True)
        aws.agent("writer")
        aws.workflow("announced", steps(
            f"""    - name: draft
      agent: writer
    - name: review
      approval:
        prompt: "Send {{{{ steps.draft.output }}}}?"
        approver: ana
        notify:
          webhook: "{receiver.url}/approvals"
          allow_private_network: true
""", name="announced"))  # fmt: skip
        aws.push(0, Reply("the draft"))
        async with aws.engine() as engine:
            started = await engine.start(
                "announced", {"query": "write"}, tenant="default", executor=aws.executor
            )
            waiting = await aws.suspended(engine, started.id)
            receiver.wait_for(1)
            # The delivery is recorded once the receiver has answered: wait for that write.
            store = await engine.store()
            announced = await store.get(started.id)
            for _ in range(200):
                approval = announced.pending_approval
                if approval is None or approval.notification is not None:
                    break
                await asyncio.sleep(0.05)
                announced = await store.get(started.id)
            await engine.decide(waiting, Approved(approver="ana"))
            ended = await aws.finished(engine, started.id)

    [sent] = receiver.requests
    assert sent.json()["prompt"] == "Send the draft?"
    assert sent.json()["run_id"] == started.id and sent.json()["step"] == "review"
    assert announced.pending_approval is not None
    assert announced.pending_approval.task_token
    assert announced.pending_approval.notification == "delivered"
    assert ended.status is WorkflowStatus.COMPLETED
