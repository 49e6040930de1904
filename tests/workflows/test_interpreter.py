"""The interpreter alone: decisions and transitions over a run, with scripted outcomes.

No executor here: each test plays the executor's part (report an outcome for the action
the interpreter asked for), which is exactly what the local and Step Functions executors do.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from astromesh.workflows import (
    ACTION,
    Approved,
    AwaitApproval,
    CallTool,
    Error,
    Finish,
    Ok,
    Parallel,
    Rejected,
    RunAgent,
    StaleOutcome,
    StepStatus,
    TimedOut,
    Wait,
    WorkflowRun,
    WorkflowStatus,
    apply_outcome,
    due_outcome,
    next_action,
    start_run,
)
from astromesh.workflows.run import utcnow
from tests.workflows.documents import LEAD_QUALIFICATION, steps, workflow


def drive(wf, run, answer, *, limit=50):
    """Play the executor: ``answer(action) -> outcome`` until Finish or a suspension."""
    actions = []
    for _ in range(limit):
        action = next_action(wf, run)
        actions.append(action)
        if isinstance(action, Finish | AwaitApproval):
            return run, actions
        outcome = answer(action)
        if outcome is None:
            return run, actions
        run = apply_outcome(wf, run, action.step, outcome)
    raise AssertionError("did not finish")


def lead_answers(score: int):
    def answer(action):
        if isinstance(action, RunAgent) and action.step == "qualify":
            return Ok(output=f"score {score}", data={"score": score})
        if isinstance(action, RunAgent):
            return Ok(output=f"{action.step}: {action.input}")
        return Ok(output={"stored": action.arguments})

    return answer


def test_upstream_example_goes_to_notify_on_a_high_score():
    wf = workflow(LEAD_QUALIFICATION)
    run, actions = drive(wf, start_run(wf, {"query": "acme corp", "id": "7"}), lead_answers(9))
    assert run.status is WorkflowStatus.COMPLETED
    assert [a.step for a in actions[:-1]] == ["research", "qualify", "notify"]
    assert actions[0].input == "acme corp"
    assert actions[1].input == "research: acme corp"  # the agent's answer, as text
    assert actions[2].input == "score 9"
    assert run.steps["decide"].output == {"goto": "notify"}
    assert run.steps["log-and-skip"].status is StepStatus.SKIPPED  # its `when` was false


def test_upstream_example_logs_and_skips_on_a_low_score():
    wf = workflow(LEAD_QUALIFICATION)
    run, actions = drive(wf, start_run(wf, {"query": "acme", "id": "7"}), lead_answers(3))
    assert [a.step for a in actions[:-1]] == ["research", "qualify", "log-and-skip"]
    assert actions[2].arguments == {"action": "set", "key": "skipped_7", "value": "score 3"}
    assert run.steps["notify"].status is StepStatus.PENDING
    assert run.output["stored"]["key"] == "skipped_7"


def test_retry_backs_off_exponentially_then_on_error_jumps():
    wf = workflow(LEAD_QUALIFICATION)
    seen = []

    def answer(action):
        seen.append(action)
        if isinstance(action, RunAgent) and action.step == "qualify":
            return Error(type="provider_error", message="model down")
        if isinstance(action, Wait):
            return Ok()
        return Ok(output="x")

    run, _ = drive(wf, start_run(wf, {"query": "q", "id": "1"}), answer)
    kinds = [(a.kind, a.step) for a in seen]
    assert kinds[:6] == [
        ("run_agent", "research"),
        ("run_agent", "qualify"),
        ("wait", "qualify"),
        ("run_agent", "qualify"),
        ("wait", "qualify"),
        ("run_agent", "qualify"),
    ]
    waits = [a for a in seen if isinstance(a, Wait)]
    assert all(w.retry for w in waits)
    assert waits[0].seconds <= 0.01 and waits[1].seconds <= 0.02
    assert [a.attempt for a in seen if a.step == "qualify" and a.kind == "run_agent"] == [1, 2, 3]
    assert run.steps["qualify"].status is StepStatus.FAILED
    assert run.steps["qualify"].attempts == 3
    assert run.steps["qualify"].error == "model down"
    assert seen[6].step == "log-and-skip"  # on_error: log-and-skip
    assert run.status is WorkflowStatus.COMPLETED


def test_on_error_fail_and_continue():
    doc = steps(
        """    - name: a
      tool: current_time
      on_error: continue
    - name: b
      tool: current_time
    - name: c
      tool: current_time
"""
    )
    wf = workflow(doc)
    run, actions = drive(wf, start_run(wf, {}), lambda a: Error(message=f"{a.step} broke"))
    assert [a.step for a in actions[:-1]] == ["a", "b"]
    assert run.status is WorkflowStatus.FAILED
    assert run.error == "step 'b' failed: b broke"
    assert run.steps["c"].status is StepStatus.PENDING
    assert actions[-1] == Finish(status="failed", error="step 'b' failed: b broke")


def test_approval_suspends_and_approve_completes():
    doc = steps(
        """    - name: draft
      agent: writer
    - name: review
      approval:
        prompt: "Send this? {{ steps.draft.output }}"
        approver: role:developer
        timeout_seconds: 3600
    - name: send
      tool: current_time
"""
    )
    wf = workflow(doc)
    run, actions = drive(wf, start_run(wf, {"query": "hi"}), lambda a: Ok(output="the draft"))
    assert isinstance(actions[-1], AwaitApproval)
    assert actions[-1].prompt == "Send this? the draft"
    assert actions[-1].approver == "role:developer"
    assert run.status is WorkflowStatus.AWAITING_APPROVAL
    pending = run.pending_approval
    assert pending is not None and pending.step == "review"
    assert pending.expires_at - pending.requested_at == timedelta(hours=1)
    assert run.wake_at == pending.expires_at
    with pytest.raises(StaleOutcome, match="awaiting_approval"):
        apply_outcome(wf, run, "review", Ok())
    run = apply_outcome(wf, run, "review", Approved(approver="ana", comment="ok"))
    assert run.pending_approval is None
    assert run.steps["review"].output == {"approved": True, "approver": "ana", "comment": "ok"}
    run, _ = drive(wf, run, lambda a: Ok(output="sent"))
    assert run.status is WorkflowStatus.COMPLETED
    with pytest.raises(StaleOutcome, match="completed"):
        apply_outcome(wf, run, "review", Approved(approver="ana"))


@pytest.mark.parametrize(
    ("on_reject", "outcome", "status", "next_step"),
    [
        ("fail", Rejected(approver="bo", comment="no"), WorkflowStatus.REJECTED, None),
        ("fail", TimedOut(), WorkflowStatus.TIMED_OUT, None),
        ("fallback", Rejected(approver="bo"), WorkflowStatus.COMPLETED, "fallback"),
        ("fallback", TimedOut(), WorkflowStatus.COMPLETED, "fallback"),
        ("continue", Rejected(approver="bo"), WorkflowStatus.COMPLETED, "send"),
    ],
)
def test_reject_and_timeout_follow_on_reject(on_reject, outcome, status, next_step):
    doc = steps(
        f"""    - name: review
      approval:
        prompt: ok?
        on_reject: {on_reject}
    - name: send
      tool: current_time
    - name: done
      switch:
        - default: true
          goto: end
    - name: fallback
      tool: current_time
    - name: end
      tool: current_time
"""
    )
    wf = workflow(doc)
    run = start_run(wf, {})
    assert run.status is WorkflowStatus.AWAITING_APPROVAL
    run = apply_outcome(wf, run, "review", outcome)
    first = next_action(wf, run)
    if next_step is None:
        assert run.status is status and isinstance(first, Finish)
        assert first.status == status.value
        return
    assert first.step == next_step
    run, _ = drive(wf, run, lambda a: Ok())
    assert run.status is status


def test_wait_step_and_resume_payload():
    doc = steps(
        """    - name: pause
      wait: {seconds: 30}
    - name: hold
      wait: {timeout_seconds: 60}
    - name: after
      tool: json_transform
      arguments: {data: "{{ steps.hold.output.answer }}"}
"""
    )
    wf = workflow(doc)
    run = start_run(wf, {})
    assert run.status is WorkflowStatus.WAITING
    action = next_action(wf, run)
    assert isinstance(action, Wait) and not action.retry and 29 < action.seconds <= 30
    run = apply_outcome(wf, run, "pause", Ok())
    action = next_action(wf, run)
    assert action.step == "hold" and action.seconds is None and 59 < action.timeout_seconds <= 60
    run = apply_outcome(wf, run, "hold", Ok(output={"answer": 42}))
    action = next_action(wf, run)
    assert isinstance(action, CallTool) and action.arguments == {"data": "42"}


def test_a_deadline_times_the_run_out():
    doc = HEADER_TIMEOUT = steps(
        """    - name: slow
      agent: writer
"""
    ).replace("spec:\n", "spec:\n  timeout_seconds: 5\n")
    wf = workflow(doc)
    run = start_run(wf, {"query": "q"})
    later = utcnow() + timedelta(seconds=6)
    run = apply_outcome(wf, run, "slow", Ok(output="late"), now=later)
    assert run.status is WorkflowStatus.TIMED_OUT
    assert run.steps["slow"].status is StepStatus.TIMED_OUT
    assert HEADER_TIMEOUT


def test_parallel_branches_and_their_errors():
    doc = steps(
        """    - name: gather
      parallel:
        - name: left
          agent: a
        - name: right
          tool: current_time
          on_error: continue
        - name: never
          agent: b
          when: "{{ trigger.flag == 'on' }}"
    - name: join
      agent: c
      input: "{{ steps.gather.output.left }} / {{ steps.left.output }}"
"""
    )
    wf = workflow(doc)
    run = start_run(wf, {"flag": "off"})
    action = next_action(wf, run)
    assert isinstance(action, Parallel)
    assert [(b.kind, b.step) for b in action.branches] == [
        ("run_agent", "left"),
        ("call_tool", "right"),
    ]
    assert run.steps["never"].status is StepStatus.SKIPPED
    run = apply_outcome(wf, run, "right", Error(message="clock broke"))
    assert next_action(wf, run).branches[0].step == "left"
    run = apply_outcome(wf, run, "left", Ok(output="L"))
    action = next_action(wf, run)
    assert isinstance(action, RunAgent) and action.input == "L / L"
    assert run.steps["gather"].output == {"left": "L"}


def test_actions_and_runs_round_trip_as_json():
    wf = workflow(LEAD_QUALIFICATION)
    run = start_run(wf, {"query": "q", "id": "1"})
    action = next_action(wf, run)
    assert ACTION.validate_python(json.loads(json.dumps(action.model_dump(mode="json")))) == action
    again = WorkflowRun.model_validate_json(run.model_dump_json())
    assert next_action(wf, again) == action


def test_wait_until_a_rendered_moment():
    doc = steps(
        """    - name: hold
      wait: {until: "{{ trigger.at }}"}
    - name: after
      tool: current_time
"""
    )
    wf = workflow(doc)
    at = utcnow() + timedelta(minutes=10)
    run = start_run(wf, {"at": at.isoformat()})
    assert run.wake_at == at
    action = next_action(wf, run)
    assert isinstance(action, Wait) and 590 < action.seconds <= 600
    assert due_outcome(wf, run) is None
    assert due_outcome(wf, run, now=at) == ("hold", Ok())
    broken = start_run(wf, {"at": "next tuesday"})
    assert broken.status is WorkflowStatus.FAILED
    assert "not an ISO 8601 time" in broken.steps["hold"].error
