"""Why two similar prompts still need different answers: the SemanticCache guard.

Sentence embeddings score "with alcohol" / "without alcohol" at 0.945 and "Paris to
London" / "London to Paris" at 0.998: close in meaning-space, opposite in what the
user wants.  :func:`prompt_conflict` compares the two texts directly (no embedder: it
works with any) and names the difference that makes a cached answer wrong:

- ``negation``: a different number of negations (not, no, never, without, n't...);
- ``numbers``: different numbers (digits or number words, ``3`` = ``three``);
- ``entities``: different named entities (capitalised words past a sentence start);
- ``order``: the same entities in another order, or a pair around a directional word
  reversed (``paris to london`` / ``london to paris``, ``A vs B`` / ``B vs A``).

It errs towards refusing: a refused hit costs one model call, a wrong hit a wrong answer.
"""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")
_NEGATIONS = frozenset({
    "not", "no", "never", "without", "none", "nobody", "nothing", "nowhere", "neither",
    "nor", "cannot", "cant", "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent",
    "wont", "wouldnt", "shouldnt", "couldnt", "hasnt", "havent", "hadnt", "mustnt",
    "except", "excluding", "lacking", "free",  # NOTE: "alcohol-free", "sugar free"
})
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 1_000_000, "billion": 1_000_000_000, "half": 0.5, "once": 1, "twice": 2,
    "single": 1, "double": 2, "triple": 3, "dozen": 12, "first": 1, "second": 2, "third": 3,
}
_DIRECTIONAL = frozenset({"to", "into", "vs", "versus", "than", "before", "after", "over",
                          "against", "minus", "divided", "from", "then"})
_STOP = frozenset({"a", "an", "the", "my", "your", "our", "this", "that", "of", "in", "on",
                   "at", "for", "and", "or", "is", "are", "be", "do", "does", "i", "you",
                   "it", "me", "how", "what", "get", "go", "convert", "translate"})
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)*)")


def prompt_conflict(a: str, b: str) -> str | None:
    """The reason ``a`` and ``b`` must not share an answer, or None when none is seen."""
    if a == b:
        return None
    wa, wb = _words(a), _words(b)
    if _negations(wa) != _negations(wb):
        return "negation"
    if _numbers(a, wa) != _numbers(b, wb):
        return "numbers"
    ea, eb = _entities(a), _entities(b)
    if ea and eb:
        if Counter(ea) != Counter(eb):
            return "entities"
        if ea != eb:
            return "order"
    if _reversed_pair(wa, wb):
        return "order"
    return None


def _words(text: str) -> list[str]:
    return [w.lower().replace("'", "").replace("’", "") for w in _WORD.findall(text)]


def _negations(words: list[str]) -> int:
    return sum(1 for w in words if w in _NEGATIONS or (w.endswith("nt") and w[:-2] in
               ("is", "are", "was", "were", "do", "does", "did", "has", "have", "had",
                "could", "would", "should", "must", "ca", "wo", "ai")))


def _numbers(text: str, words: list[str]) -> Counter[float]:
    found: Counter[float] = Counter()
    for match in _NUMBER.finditer(text):
        raw = match.group(1).replace(",", "") if re.fullmatch(
            r"\d{1,3}(,\d{3})+", match.group(1)) else match.group(1).replace(",", ".")
        try:
            found[float(raw)] += 1
        except ValueError:
            continue
    for w in words:
        value = _NUMBER_WORDS.get(w)
        if value is not None:
            found[float(value)] += 1
    return found


def _entities(text: str) -> list[str]:
    """Capitalised words that do not start a sentence, in order (lower-cased)."""
    out: list[str] = []
    start = True
    for token in re.findall(r"[\w'’]+|[.!?;:\"“”]", text):
        if token in ".!?;:":
            start = True
            continue
        if token in "\"“”":
            continue
        if not start and token[0].isupper() and token.lower() not in ("i",):
            out.append(token.lower())
        start = False
    return out


def _reversed_pair(wa: list[str], wb: list[str]) -> bool:
    pairs_a = _pairs(wa)
    return any((y, x) in pairs_a for x, y in _pairs(wb) if x != y)


def _pairs(words: list[str]) -> set[tuple[str, str]]:
    """(word before, word after) each directional word, skipping stop words."""
    out: set[tuple[str, str]] = set()
    content = [w for w in words if w not in _STOP or w in _DIRECTIONAL]
    for i, w in enumerate(content):
        if w in _DIRECTIONAL and 0 < i < len(content) - 1:
            before, after = content[i - 1], content[i + 1]
            if before not in _DIRECTIONAL and after not in _DIRECTIONAL:
                out.add((before, after))
    return out
