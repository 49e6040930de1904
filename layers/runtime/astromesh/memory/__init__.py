"""Agent memory: conversational history windows (semantic and episodic memory to follow)."""

from astromesh.memory.conversational import (
    ConversationalMemory,
    SlidingWindowMemory,
    TokenBudgetMemory,
    build_memory,
    estimate_tokens,
)

__all__ = [
    "ConversationalMemory",
    "SlidingWindowMemory",
    "TokenBudgetMemory",
    "build_memory",
    "estimate_tokens",
]
