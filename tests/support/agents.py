"""Write agent documents for tests: a valid base agent with the fields a test overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def agent_document(name: str = "helper", **spec: Any) -> dict[str, Any]:
    """An ``astromesh/v1`` Agent; keyword arguments replace whole ``spec`` sections."""
    base: dict[str, Any] = {
        "model": {"primary": {"provider": "openai_compat", "model": "scripted"}},
        "prompts": {"system": "You are {{ agent.display_name }}."},
        "orchestration": {"pattern": "react", "max_iterations": 5, "timeout_seconds": 30},
        "identity": {"display_name": "Helper", "description": "A test agent"},
    }
    base.update(spec)
    return {
        "apiVersion": "astromesh/v1",
        "kind": "Agent",
        "metadata": {"name": name, "version": "1.0.0", "namespace": "tests"},
        "spec": base,
    }


def write_agent(folder: Path, name: str = "helper", **spec: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.agent.yaml"
    path.write_text(yaml.safe_dump(agent_document(name, **spec), sort_keys=False))
    return path


def primary(url: str, provider: str = "openai_compat", **extra: Any) -> dict[str, Any]:
    """A ``spec.model`` whose primary candidate is the scripted server at ``url``."""
    return {"primary": {"provider": provider, "model": "scripted", "endpoint": url, **extra}}


def python_tool(name: str, handler: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "python", "handler": f"tests.support.tools:{handler}", **extra}


PRICED_MODEL: dict[str, Any] = {"primary": {"provider": "house", "model": "scripted"}}
"""A ``spec.model`` naming :func:`write_priced_provider`'s provider."""

_PRICED_PROVIDER = """apiVersion: astromesh/v1
kind: ProviderConfig
metadata: {{name: priced}}
spec:
  providers:
    house:
      type: openai_compat
      endpoint: "{url}"
      models: [scripted]
      pricing:
        scripted: {{input_per_million: 1000, output_per_million: 2000}}
"""


def write_priced_provider(folder: Path, url: str, *, breaker_threshold: int | None = None) -> Path:
    """A ProviderConfig ``house`` for the scripted server at ``url``, priced so that 40
    tokens in and 10 out cost 0.04 + 0.02 = 0.06 USD; with ``breaker_threshold``, a circuit
    breaker opening after that many failures (60 s recovery)."""
    text = _PRICED_PROVIDER.format(url=url)
    if breaker_threshold is not None:
        text += (
            "  routing:\n"
            f"    circuit_breaker: {{failure_threshold: {breaker_threshold},"
            " recovery_timeout: 60}\n"
        )
    path = folder / "providers.yaml"
    path.write_text(text)
    return path
