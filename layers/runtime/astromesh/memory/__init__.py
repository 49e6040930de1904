"""Agent memory: conversational (sliding window, token budget, running summary), semantic
(facts by similarity), episodic (a log of runs), and the context builder that fits them all
into the model's budget."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from astromesh.memory.context import BuiltContext, ContextBuilder, Dropped
    from astromesh.memory.conversational import (
        ConversationalMemory,
        SlidingWindowMemory,
        TokenBudgetMemory,
        build_memory,
        estimate_tokens,
    )
    from astromesh.memory.episodic import Episode, EpisodicLog, build_episodic_memory
    from astromesh.memory.semantic import SemanticMemory, build_semantic_memory
    from astromesh.memory.summary import (
        SummaryMemory,
        build_summary_store,
        model_summarizer,
    )

_EXPORTS = {
    "BuiltContext": "astromesh.memory.context",
    "ContextBuilder": "astromesh.memory.context",
    "ConversationalMemory": "astromesh.memory.conversational",
    "Dropped": "astromesh.memory.context",
    "Episode": "astromesh.memory.episodic",
    "EpisodicLog": "astromesh.memory.episodic",
    "SemanticMemory": "astromesh.memory.semantic",
    "SlidingWindowMemory": "astromesh.memory.conversational",
    "SummaryMemory": "astromesh.memory.summary",
    "TokenBudgetMemory": "astromesh.memory.conversational",
    "build_episodic_memory": "astromesh.memory.episodic",
    "build_memory": "astromesh.memory.conversational",
    "build_semantic_memory": "astromesh.memory.semantic",
    "build_summary_store": "astromesh.memory.summary",
    "estimate_tokens": "astromesh.memory.conversational",
    "model_summarizer": "astromesh.memory.summary",
}
"""Where each name lives, imported on first use: an agent with a conversation window does
not load the episodic, semantic and summary stores."""

__all__ = [
    "BuiltContext",
    "ContextBuilder",
    "ConversationalMemory",
    "Dropped",
    "Episode",
    "EpisodicLog",
    "SemanticMemory",
    "SlidingWindowMemory",
    "SummaryMemory",
    "TokenBudgetMemory",
    "build_episodic_memory",
    "build_memory",
    "build_semantic_memory",
    "build_summary_store",
    "estimate_tokens",
    "model_summarizer",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
