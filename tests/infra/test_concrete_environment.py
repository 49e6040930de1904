"""Synthesis with a concrete account and region, as the CDK CLI always does (it fills
``CDK_DEFAULT_ACCOUNT``/``CDK_DEFAULT_REGION`` from the profile): cdk-nag writes the literal
region and account into the ids of findings on ARNs the stacks format, so acknowledgements
that hard-coded ``<AWS::Region>`` stopped matching and every real ``cdk synth`` failed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytestmark = pytest.mark.infra

ACCOUNT, REGION = "123456789012", "eu-west-1"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_both_stages_synthesize_for_a_real_account_and_region(
    stage: str, synthesize: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("CDK_DEFAULT_REGION", REGION)
    app = synthesize(stage, {})  # raises on any cdk-nag finding left unacknowledged
    stacks = app.stacks  # type: ignore[attr-defined]
    assert (stacks.api.region, stacks.api.account) == (REGION, ACCOUNT)
