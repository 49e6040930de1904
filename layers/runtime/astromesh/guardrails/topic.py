"""``topic_filter``: refuse (or redact) conversations about listed topics.

YAML: ``forbidden_topics`` (upstream spells it ``blocked_topics``) and ``action: block |
redact``. A topic is a keyword or a phrase, matched case-insensitively as whole words, with
whitespace runs treated alike and a plural ending allowed ("weapon" finds "Weapons", not
"weaponised" or "shotgun"). Matching is one Aho-Corasick pass when ``pyahocorasick`` is
installed, else one compiled regex; both give the same answers.

Keywords miss paraphrases. For those, pass an ``embedder`` (an async
``texts -> vectors`` callable, e.g. the RAG embedder) and a ``threshold``: the text is then
also compared with each topic by cosine similarity, and a close one blocks. An embedding
match has no span to redact, so it blocks whatever ``action`` says. Topic vectors are
computed once, on first use. Without an embedder only keywords are used.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from astromesh.guardrails._text import PhraseMatcher
from astromesh.guardrails.base import Guardrail, Side, Verdict

if TYPE_CHECKING:
    from astromesh.runs.state import RunState

Embedder = Callable[[Sequence[str]], Awaitable[list[list[float]]]]
"""``texts -> one vector per text``."""

REDACTED = "[REDACTED]"
DEFAULT_SIMILARITY = 0.8


class TopicGuardrail(Guardrail):
    """Blocks or redacts mentions of forbidden topics."""

    type: ClassVar[str] = "topic_filter"

    def __init__(
        self,
        topics: Sequence[str],
        *,
        action: str = "block",
        embedder: Embedder | None = None,
        threshold: float = DEFAULT_SIMILARITY,
        name: str | None = None,
        use_automaton: bool = True,
    ) -> None:
        super().__init__(name=name)
        self.topics = list(topics)
        self.action = action
        self.matcher = PhraseMatcher(topics, plurals=True, use_automaton=use_automaton)
        self.embedder = embedder
        self.threshold = threshold
        self._topic_vectors: list[list[float]] | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_config(cls, cfg: Any, **kwargs: Any) -> TopicGuardrail:
        return cls(cfg.forbidden_topics, action=cfg.action, **kwargs)

    async def check(self, text: str, run: RunState | None, side: Side) -> Verdict:
        matches = self.matcher.find(text)
        message = "This agent cannot help with that topic."
        if matches:
            counts = dict(Counter(m.phrase for m in matches))
            topics = ", ".join(f"'{t}'" for t in sorted(counts))
            if self.action == "block":
                return Verdict.block(
                    self.name, f"forbidden topic {topics}", message=message, findings=counts
                )
            out, last = [], 0
            for m in matches:
                out += [text[last : m.start], REDACTED]
                last = m.end
            out.append(text[last:])
            return Verdict.redact(self.name, "".join(out), f"redacted topic {topics}", counts)
        if self.embedder is not None and text.strip():
            topic, score = await self._closest(text)
            if score >= self.threshold:
                return Verdict.block(
                    self.name,
                    f"close to forbidden topic '{topic}' (similarity {score:.2f})",
                    message=message,
                    findings={topic: 1},
                )
        return Verdict.allow(self.name)

    async def _closest(self, text: str) -> tuple[str, float]:
        assert self.embedder is not None
        async with self._lock:
            if self._topic_vectors is None:
                self._topic_vectors = await self.embedder(self.topics)
        [vector] = await self.embedder([text])
        scores = [_cosine(vector, topic) for topic in self._topic_vectors]
        best = max(range(len(scores)), key=scores.__getitem__)
        return self.topics[best], scores[best]


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0
