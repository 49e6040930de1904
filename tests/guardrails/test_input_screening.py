"""The input side screens the whole caller input before the run is stored: the query and
every string of ``context`` (keys and values, at any depth), failing closed when a guardrail
raises, and ``pipeline.screen`` turns a block into a run that ends on its first stage."""

from __future__ import annotations

from typing import Any

import pytest

from astromesh.config.guardrails import GuardrailsSpec
from astromesh.guardrails import (
    Guardrail,
    GuardrailBlocked,
    GuardrailChain,
    Side,
    Verdict,
    build_guardrails,
    guard_input,
)
from astromesh.guardrails.chain import BLOCKED_PLACEHOLDER, INPUT_UNCHECKED_MESSAGE
from astromesh.runs.state import RunState

REDACT = {"input": [{"type": "pii_detection", "action": "redact"}]}


def chain(spec: dict[str, Any]) -> GuardrailChain:
    return build_guardrails(GuardrailsSpec.model_validate(spec))


def guardrail_steps(run: RunState) -> list[dict[str, Any]]:
    return [s.data for s in run.steps if s.type == "guardrail"]


async def test_context_keys_and_values_are_redacted_at_any_depth():
    run = RunState(
        agent="a",
        query="hello",
        context={
            "owner": "ann@example.org",
            "nested": {"numbers": ["call +44 20 7946 0958", 7, None, True]},
            "ann@example.org": "her notes",
            "bob@example.org": "his notes",
            "count": 3,
            "card": 4111111111111111,  # a JSON number is judged as its digits
        },
    )

    await guard_input(run, chain(REDACT))

    assert run.context == {
        "owner": "[EMAIL]",
        "nested": {"numbers": ["call [PHONE]", 7, None, True]},
        "[EMAIL]": "her notes",
        "[EMAIL] (2)": "his notes",  # two keys redacted alike are both kept
        "count": 3,
        "card": "[CREDIT_CARD]",
    }
    steps = guardrail_steps(run)
    assert steps[0] == {"name": "pii_detection", "side": "input", "action": "allow", "reason": ""}
    # Only what a context string changed is recorded, with the field it came from.
    assert [(s["action"], s.get("field")) for s in steps[1:]] == [("redact", "context")] * 5
    assert "ann@" not in repr(run.model_dump())


async def test_a_blocked_context_string_drops_the_whole_context():
    spec = {"input": [{"type": "content_filter", "blocked_patterns": ["forbidden"]}]}
    run = RunState(agent="a", query="hello", context={"a": "fine", "b": ["forbidden word"]})

    with pytest.raises(GuardrailBlocked):
        await guard_input(run, chain(spec))

    assert run.context is None and run.query == "hello"
    assert guardrail_steps(run)[-1]["field"] == "context"


async def test_a_blocked_query_drops_the_unscreened_context():
    spec = {"input": [{"type": "pii_detection", "action": "block"}]}
    run = RunState(agent="a", query="card 4111 1111 1111 1111", context={"k": "ann@example.org"})

    with pytest.raises(GuardrailBlocked):
        await guard_input(run, chain(spec))

    assert run.query == BLOCKED_PLACEHOLDER and run.context is None


class Broken(Guardrail):
    type = "broken"

    async def check(self, text: str, run: RunState | None, side: Side) -> Verdict:
        raise RuntimeError(f"cannot judge {text}")


async def test_a_guardrail_that_raises_refuses_the_input():
    """Fail closed: what could not be screened is neither kept nor sent on, and the user is
    told to try again (not that their message broke a rule)."""
    run = RunState(agent="a", query="ann@example.org", context={"k": "v"})

    with pytest.raises(GuardrailBlocked) as caught:
        await guard_input(run, GuardrailChain(input=[Broken()]))

    assert caught.value.message == INPUT_UNCHECKED_MESSAGE
    assert run.query == BLOCKED_PLACEHOLDER and run.context is None
    [step] = guardrail_steps(run)
    assert step["action"] == "block" and step["reason"] == "guardrail failed: RuntimeError"
    assert "ann@" not in repr(run.model_dump())


async def test_screening_twice_changes_nothing():
    run = RunState(agent="a", query="mail ann@example.org", context={"k": "ann@example.org"})
    guardrails = chain(REDACT)
    await guard_input(run, guardrails)
    before = run.model_dump()

    assert await guard_input(run, guardrails) is None
    assert run.model_dump() == before
