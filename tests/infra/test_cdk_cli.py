"""`npx cdk synth` as a user types it, with the CDK CLI pinned in package.json, on a fresh copy.

The other infra tests call ``build_app`` in-process; this one runs the real CLI, because the
CLI is what broke deploys before (issue 14): it always hands the app a region, and with
credentials an account too, and cdk-nag then names findings with those literals. Each case
runs in a copy of the files a clone would have (tracked files plus new, unignored ones), so
``cdk.json``'s app command is checked to work without anything the working tree happens to
hold (``cdk.out``, ``cdk.context.json``, build output).

Two ways a user runs the CLI, for both stages:

- **with credentials**: a moto server on 127.0.0.1 answers STS (account ``123456789012``) and
  EC2's availability-zone lookup, exactly as a profile would let the CLI do against AWS;
- **without credentials**: the CLI still gives the app a region (``AWS_REGION``) but no
  account.

Needs node and ``npm ci`` run at the repository root (``.ci/run`` does); skipped, saying so,
otherwise. Layers are not bundled (``-c skipBundling=true``): tests never run pip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from infra.config import Names, settings_for

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
"""moto's default account: what STS answers for any credentials."""


def _pinned_cli_version() -> str:
    lock = json.loads((REPO / "package-lock.json").read_text(encoding="utf-8"))
    return str(lock["packages"]["node_modules/aws-cdk"]["version"])


def _installed_cli_version() -> str | None:
    manifest = REPO / "node_modules" / "aws-cdk" / "package.json"
    if not manifest.is_file():
        return None
    return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])


def _skip_reason() -> str | None:
    if shutil.which("node") is None or shutil.which("npx") is None:
        return "node/npx not found: the CDK CLI runs on node (install nodejs and npm, then npm ci)"
    if shutil.which("git") is None:
        return "git not found: the fresh copy is made from the files git tracks"
    installed, pinned = _installed_cli_version(), _pinned_cli_version()
    if installed != pinned:
        found = "absent" if installed is None else installed
        return f"the pinned CDK CLI (aws-cdk {pinned}) is not installed ({found}): run npm ci"
    return None


_SKIP = _skip_reason()
pytestmark = [pytest.mark.infra, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]


def _fresh_copy(dest: Path) -> Path:
    """The working tree as a clone would have it, plus the installed CLI (``node_modules``)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    for raw in filter(None, listed.split(b"\0")):
        name = os.fsdecode(raw)
        source = REPO / name
        if not source.is_file():  # tracked, deleted in the working tree
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    (dest / "node_modules").symlink_to(REPO / "node_modules", target_is_directory=True)
    return dest


@dataclass(frozen=True)
class Synth:
    """One ``npx cdk synth`` run: its exit code, output, and the copy it ran in."""

    returncode: int
    output: str
    root: Path

    @property
    def manifest(self) -> dict[str, object]:
        return json.loads((self.root / "cdk.out" / "manifest.json").read_text(encoding="utf-8"))

    def stack_environments(self) -> dict[str, str]:
        artifacts = self.manifest["artifacts"]
        assert isinstance(artifacts, dict)
        return {
            name: artifact["environment"]
            for name, artifact in artifacts.items()
            if artifact["type"] == "aws:cloudformation:stack"
        }


def _clean_env(tmp: Path) -> dict[str, str]:
    """The caller's environment without any AWS or CDK setting (a developer's profile must not
    reach real AWS from a test), the CLI's telemetry off, no instance metadata probing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(
        AWS_CONFIG_FILE=str(tmp / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        CDK_DISABLE_CLI_TELEMETRY="true",
    )
    return env


def _synth(root: Path, stage: str, region: str, env: dict[str, str]) -> Synth:
    """``npx cdk synth -c stage=<stage>``, with the GPU endpoint's TLS settings prod requires."""
    command = ["npx", "--no-install", "cdk", "synth", "-c", f"stage={stage}",
               "-c", "skipBundling=true", "--quiet", "--no-notices"]  # fmt: skip
    if settings_for(stage).gpu is not None:
        command += [
            "-c", "gpuDomainName=models.internal.example.com",
            "-c", f"gpuCertificateArn=arn:aws:acm:{region}:{ACCOUNT}:certificate/"
            "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
        ]  # fmt: skip
    done = subprocess.run(
        command, cwd=root, env={**env, "AWS_REGION": region}, capture_output=True, text=True
    )
    return Synth(done.returncode, done.stdout + done.stderr, root)


@pytest.fixture(scope="module")
def aws_endpoint() -> Iterator[str]:
    """A moto server standing in for the AWS APIs the CLI calls with a profile (STS, EC2)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _expected_stacks(stage: str) -> set[str]:
    names = Names(stage)
    parts = ["network", "data", "runtime", "orchestration", "api", "observability"]
    if settings_for(stage).gpu is not None:
        parts.append("model-serving")
    return {names.stack(part) for part in parts}


def _assert_clean(synth: Synth, stage: str) -> None:
    """Exit 0, every stack written, and no validation plugin (cdk-nag's AwsSolutions pack
    among them) reporting anything unacknowledged."""
    assert synth.returncode == 0, synth.output[-4000:]
    assert "(AwsSolutions)" not in synth.output, synth.output[-4000:]
    assert set(synth.stack_environments()) == _expected_stacks(stage)
    report = json.loads(
        (synth.root / "cdk.out" / "validation-report.json").read_text(encoding="utf-8")
    )
    failed = [p for p in report["pluginReports"] if p["conclusion"] != "success"]
    assert failed == [], failed


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_cdk_synth_with_credentials(stage: str, aws_endpoint: str, tmp_path: Path) -> None:
    """The deploying user's path: the CLI resolves the account from its credentials and
    looks the region's availability zones up, and the app synthesizes for that environment."""
    root = _fresh_copy(tmp_path / "clone")
    env = {
        **_clean_env(tmp_path),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": aws_endpoint,
    }
    synth = _synth(root, stage, "eu-west-1", env)
    _assert_clean(synth, stage)
    assert set(synth.stack_environments().values()) == {f"aws://{ACCOUNT}/eu-west-1"}
    lookups = json.loads((root / "cdk.context.json").read_text(encoding="utf-8"))
    assert lookups[f"availability-zones:account={ACCOUNT}:region=eu-west-1"][:2] == [
        "eu-west-1a",
        "eu-west-1b",
    ]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_cdk_synth_without_credentials(stage: str, tmp_path: Path) -> None:
    """No profile at all: the CLI still supplies a region (never an account), the case the
    in-process tests do not cover, and the synth is as clean."""
    root = _fresh_copy(tmp_path / "clone")
    synth = _synth(root, stage, "ap-southeast-2", _clean_env(tmp_path))
    _assert_clean(synth, stage)
    assert set(synth.stack_environments().values()) == {"aws://unknown-account/ap-southeast-2"}
