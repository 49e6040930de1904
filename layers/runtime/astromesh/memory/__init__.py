"""Agent memory: conversational (sliding window, token budget, running summary), semantic
(facts by similarity), episodic (a log of runs), and the context builder that fits them all
into the model's budget."""

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
