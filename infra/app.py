"""The Astromesh CDK app: ``cdk synth -c stage=dev|prod`` (cdk.json runs this file).

Stacks, in deployment order (each depends only on earlier ones)::

    network -> data -> [model-serving] -> runtime -> orchestration -> api -> observability

cdk-nag's AwsSolutions pack checks every stack; every suppression carries its reason next to
the resource it concerns. Tests call :func:`build_app` with ``skipBundling`` (no pip).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run as `python3 infra/app.py` (cdk.json): make `infra` and the runtime importable.
_REPO = Path(__file__).resolve().parents[1]
for _path in (_REPO, _REPO / "layers" / "runtime"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.config import PROJECT, Names, StageSettings, settings_for  # noqa: E402
from infra.stacks.api import ApiStack  # noqa: E402
from infra.stacks.data import DataStack  # noqa: E402
from infra.stacks.model_serving import ModelServingStack  # noqa: E402
from infra.stacks.network import NetworkStack  # noqa: E402
from infra.stacks.observability import ObservabilityStack  # noqa: E402
from infra.stacks.orchestration import OrchestrationStack  # noqa: E402
from infra.stacks.runtime import RuntimeStack  # noqa: E402


@dataclass(frozen=True, slots=True)
class Stacks:
    """The app's stacks, for tests and callers that want more than the assembly."""

    settings: StageSettings
    network: NetworkStack
    data: DataStack
    model_serving: ModelServingStack | None
    runtime: RuntimeStack
    orchestration: OrchestrationStack
    api: ApiStack
    observability: ObservabilityStack

    def all(self) -> list[cdk.Stack]:
        found = (
            self.network,
            self.data,
            self.model_serving,
            self.runtime,
            self.orchestration,
            self.api,
            self.observability,
        )
        return [stack for stack in found if stack is not None]


def build_stacks(app: cdk.App, settings: StageSettings) -> Stacks:
    """Every stack of ``settings.name`` in ``app``, with cdk-nag applied."""
    names = Names(settings.name)
    env = cdk.Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    common: dict[str, Any] = {"settings": settings, "env": env}
    network = NetworkStack(app, names.stack("network"), **common)
    data = DataStack(app, names.stack("data"), names=names, network=network, **common)
    model_serving = (
        ModelServingStack(
            app, names.stack("model-serving"), names=names, network=network, data=data, **common
        )
        if settings.gpu is not None
        else None
    )
    runtime = RuntimeStack(
        app, names.stack("runtime"), names=names, network=network, data=data, **common
    )
    if model_serving is not None:
        runtime.add_stack_dependency(model_serving, "reads the model server's endpoint from SSM")
    orchestration = OrchestrationStack(
        app, names.stack("orchestration"), names=names, runtime=runtime, **common
    )
    api = ApiStack(app, names.stack("api"), names=names, runtime=runtime, **common)
    observability = ObservabilityStack(
        app,
        names.stack("observability"),
        names=names,
        runtime=runtime,
        orchestration=orchestration,
        api=api,
        **common,
    )
    stacks = Stacks(
        settings, network, data, model_serving, runtime, orchestration, api, observability
    )
    for stack in stacks.all():
        cdk.Tags.of(stack).add("project", PROJECT)
        cdk.Tags.of(stack).add("stage", settings.name)
    check(app)
    return stacks


def check(app: cdk.App) -> None:
    """cdk-nag's AwsSolutions pack as a policy-validation plugin: any finding not acknowledged
    (with its reason, beside the resource) fails the synth."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def build_app(
    stage: str | None = None,
    context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
) -> tuple[cdk.App, Stacks]:
    """The app for ``stage`` (default: the ``stage`` context, else ``dev``), with cdk.json's
    context (feature flags) under ``context``, as the CDK CLI would give it."""
    defaults = json.loads((_REPO / "cdk.json").read_text(encoding="utf-8")).get("context", {})
    app = cdk.App(context={**defaults, **(context or {})}, outdir=outdir)
    stage = stage or app.node.try_get_context("stage") or "dev"
    keys = ("gpu", "gpuImageUri", "gpuModel", "gpuDomainName", "gpuCertificateArn",
            "gpuHostedZoneId", "gpuAllowPlaintext", "adotLayerArn", "alarmEmail",
            "skipBundling")  # fmt: skip
    settings = settings_for(stage, {k: app.node.try_get_context(k) for k in keys})
    return app, build_stacks(app, settings)


def main() -> None:
    app, _ = build_app()
    app.synth()


if __name__ == "__main__":
    main()
