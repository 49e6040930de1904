"""One synthesized app per stage, shared by every infra test (the first synth costs ~10-20 s).

The apps are synthesized offline with ``skipBundling`` (no pip: the layers are their source
folders) and asset staging off (asset paths point at the sources, so tests can read the
handlers the templates name). Deselect these tests with ``-m "not infra"``.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

GPU_TLS_CONTEXT = {
    "gpuDomainName": "models.internal.example.com",
    "gpuCertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/"
    "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
}
"""The GPU endpoint's TLS name and certificate: prod does not synthesize without them."""

SYNTH_CONTEXT = {
    "skipBundling": "true",
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:disable-asset-staging": True,
    **GPU_TLS_CONTEXT,
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "infra: synthesizes the CDK app (slow-ish); deselect with -m 'not infra'"
    )


@dataclass
class Synthesized:
    """The stacks of one stage and their templates, keyed by the ``Stacks`` field names."""

    stacks: Any  # infra.app.Stacks
    templates: dict[str, dict[str, Any]]
    outdir: Path

    def resources(self, stack: str, type_: str) -> dict[str, dict[str, Any]]:
        return {
            logical: resource
            for logical, resource in self.templates[stack]["Resources"].items()
            if resource["Type"] == type_
        }


def _synthesize(stage: str, context: dict[str, Any] | None = None) -> Iterator[Synthesized]:
    from aws_cdk.assertions import Template
    from infra.app import build_app

    with tempfile.TemporaryDirectory(prefix=f"astromesh-cdk-{stage}-") as outdir:
        app, stacks = build_app(stage, {**SYNTH_CONTEXT, **(context or {})}, outdir=outdir)
        app.synth()
        fields = ("network", "data", "model_serving", "runtime", "orchestration", "api",
                  "observability")  # fmt: skip
        templates = {
            field: Template.from_stack(getattr(stacks, field)).to_json()
            for field in fields
            if getattr(stacks, field) is not None
        }
        yield Synthesized(stacks, templates, Path(outdir))


@pytest.fixture(scope="session")
def dev() -> Iterator[Synthesized]:
    yield from _synthesize("dev")


@pytest.fixture(scope="session")
def prod() -> Iterator[Synthesized]:
    yield from _synthesize("prod")


@pytest.fixture(scope="session", params=["dev", "prod"])
def synthesized(request: pytest.FixtureRequest) -> Synthesized:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def synthesize() -> Iterator[Callable[..., Synthesized]]:
    """``synthesize(stage, context)``: another app, with ``context`` over SYNTH_CONTEXT (a key
    set to None is left out). Each call is a full synth: keep them few."""
    with contextlib.ExitStack() as apps:
        yield lambda stage, context: apps.enter_context(
            contextlib.contextmanager(_synthesize)(stage, context)
        )
