"""SemanticCache's guard: prompts that differ in negation, numbers or entity order never
share an answer; paraphrases still do.  Embedder-independent (the trigram embedder here;
the MiniLM numbers come from test_semantic_minilm.py when the extra is installed)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ember.ai.prompt_guard import prompt_conflict
from ember.ai.semantic_cache import SemanticCache, hashed_trigram_embedder
from tests.ai.semantic_pairs import DIFFERENT, GUARDED, PARAPHRASES


@pytest.mark.parametrize(("prompt", "cached", "reason"), GUARDED,
                         ids=[f"{r}-{i}" for i, (_a, _b, r) in enumerate(GUARDED)])
def test_guarded_pairs_are_refused_both_ways(prompt, cached, reason):
    assert prompt_conflict(prompt, cached) == reason
    assert prompt_conflict(cached, prompt) == reason


@pytest.mark.parametrize(("a", "b"), PARAPHRASES)
def test_paraphrases_pass_the_guard(a, b):
    assert prompt_conflict(a, b) is None and prompt_conflict(b, a) is None


def test_the_guard_also_catches_some_hard_negatives():
    refused = [pair for pair in DIFFERENT if prompt_conflict(*pair)]
    assert len(refused) == 6  # docs/ai.md reports it


def _hits(threshold: float, guard: bool, pairs: list) -> int:
    """How many ``(prompt, cached prompt)`` pairs the trigram cache answers from cache."""
    embed = hashed_trigram_embedder()

    async def hit(a: str, b: str) -> bool:
        cache = SemanticCache(threshold=threshold, embedder=embed, guard=guard)
        await cache.set(b, "answer")
        return await cache.get(a) is not None

    async def main() -> int:
        return sum([await hit(pair[0], pair[1]) for pair in pairs])

    return asyncio.run(main())


@pytest.mark.parametrize(("threshold", "guard", "true", "false", "guarded_false"), [
    (0.9, False, 0, 1, 11), (0.9, True, 0, 1, 0),
    (0.8, False, 1, 4, 21), (0.8, True, 1, 3, 0),
    (0.7, False, 3, 9, 23), (0.7, True, 3, 6, 0),
])
def test_hits_with_and_without_the_guard(threshold, guard, true, false, guarded_false):
    """The figures in docs/ai.md (trigram embedder; calibration set, then guard set)."""
    assert _hits(threshold, guard, PARAPHRASES) == true
    assert _hits(threshold, guard, DIFFERENT) == false
    assert _hits(threshold, guard, GUARDED) == guarded_false


def test_the_issue_pairs_are_misses_and_counted():
    async def main():
        cache = SemanticCache(threshold=0.5, embedder=hashed_trigram_embedder())
        await cache.set("Give me a cocktail recipe with alcohol.", "Rum punch")
        assert await cache.get("Give me a cocktail recipe without alcohol.") is None
        await cache.set("How far is it from Paris to London?", "344 km")
        assert await cache.get("How far is it from London to Paris?") is None
        assert cache.guarded == 2 and cache.hits == 0
        assert await cache.get("How far is it from Paris to London") == "344 km"
        off = SemanticCache(threshold=0.5, embedder=hashed_trigram_embedder(), guard=False)
        await off.set("Give me a cocktail recipe with alcohol.", "Rum punch")
        assert await off.get("Give me a cocktail recipe without alcohol.") == "Rum punch"
        custom = SemanticCache(threshold=0.5, embedder=hashed_trigram_embedder(),
                               guard=lambda a, b: "mine" if "x" in a else None)
        await custom.set("abc", 1)
        assert await custom.get("abcx") is None and await custom.get("abc") == 1

    asyncio.run(main())


@pytest.mark.parametrize("guard", ["yes", 1, object()])
def test_garbage_guard_is_refused(guard):
    with pytest.raises(TypeError, match="guard"):
        SemanticCache(guard=guard)


@settings(max_examples=120, deadline=None)
@given(st.text(max_size=80), st.text(max_size=80))
def test_any_text_gives_a_symmetric_answer_and_no_crash(a, b):
    one, two = prompt_conflict(a, b), prompt_conflict(b, a)
    assert (one is None) == (two is None)
    assert prompt_conflict(a, a) is None
