"""Workflows over a temporary agents folder: upstream's example agents on a scripted model.

The app fixtures are the channels' (``make_app``, ``client_for``); the agents are real
agents whose model is the scripted OpenAI-compatible server on loopback.
"""

from __future__ import annotations

from pathlib import Path

from tests.channels.conftest import agents_dir, client_for, make_app
from tests.support.agents import primary, write_agent
from tests.workflows.documents import LEAD_QUALIFICATION

__all__ = ["agents_dir", "client_for", "make_app"]

SCORE_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer"}},
    "required": ["score"],
}


def write_lead_agents(folder: Path, url: str) -> None:
    """Upstream's example's three agents (the qualifier answers ``{"score": N}``) and the
    example workflow, in the agents folder."""
    write_agent(folder, "web-researcher", model=primary(url))
    write_agent(folder, "sales-qualifier", model=primary(url), output_schema=SCORE_SCHEMA)
    write_agent(folder, "email-composer", model=primary(url))
    (folder / "lead.workflow.yaml").write_text(LEAD_QUALIFICATION)
