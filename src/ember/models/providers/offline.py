"""The offline provider: ``offline/<anything>`` needs no key and no network.

Answers are deterministic functions of the prompt and always start with
``[offline <model>]`` so nobody mistakes them for a real model:

- ``offline/echo`` (and any other name): ``[offline echo] You said: <last user text>``
- ``offline/reverse``: the last user text reversed
- ``offline/upper``: the last user text upper-cased

Tokens are counted with the local tokenizer (:mod:`ember.models.tokens`), the
answer streams one token per chunk, paced by the ``token_delay`` parameter
(seconds) or ``EMBER_OFFLINE_TOKEN_DELAY``; ``max_tokens`` truncates with
``finish_reason="length"``. Cost is always 0.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from ember.models import tokens
from ember.models.exceptions import ModelProviderError
from ember.models.providers.base import BaseProvider, Prompt
from ember.models.schemas import ChatResponse, Choice, StreamChunk, UsageStats


def _last_user_text(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    for message in reversed(list(prompt)):
        if isinstance(message, str):
            return message
        if isinstance(message, dict) and message.get("role", "user") == "user":
            return tokens.prompt_text([message])
    return tokens.prompt_text(prompt)


def _token_delay(value: Any, name: str) -> float:
    """Seconds between tokens: a finite number in [0, 60], else an error naming ``name``."""
    try:
        delay = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        delay = float("nan")
    if not 0 <= delay <= 60:  # NOTE: False for NaN too
        raise ModelProviderError(f"{name}={value!r} must be a number of seconds between 0 and 60 "
                                 f"(the delay between streamed tokens), e.g. {name}=0.05",
                                 context={"variable": name})
    return delay


class OfflineProvider(BaseProvider):
    """Deterministic, key-less, network-less stand-in for a model."""

    requires_api_key: ClassVar[bool] = False
    free: ClassVar[bool] = True
    name: ClassVar[str] = "offline"

    def __init__(self, api_key: str | None = None, *, token_delay: float | None = None) -> None:
        super().__init__(api_key)
        if token_delay is None:
            token_delay = _token_delay(os.environ.get("EMBER_OFFLINE_TOKEN_DELAY") or "0",
                                       "EMBER_OFFLINE_TOKEN_DELAY")
        else:
            token_delay = _token_delay(token_delay, "token_delay")
        self.token_delay = token_delay

    def answer(self, prompt: Prompt, model: str) -> str:
        """The full deterministic answer for ``prompt``."""
        text = _last_user_text(prompt).strip()
        if model == "reverse":
            body = text[::-1]
        elif model == "upper":
            body = text.upper()
        else:
            body = f"You said: {text}" if text else "You said nothing."
        return f"[offline {model}] {body}"

    def _plan(
        self, prompt: Prompt, model: str, params: dict[str, Any]
    ) -> tuple[list[str], int, str, float]:
        enc = tokens.get_encoder(model)
        pieces = enc.pieces(self.answer(prompt, model))
        finish = "stop"
        limit = params.get("max_tokens") or params.get("max_completion_tokens")
        if limit is not None and int(limit) < len(pieces):
            pieces, finish = pieces[: max(0, int(limit))], "length"
        system = params.get("system")
        prompt_tokens = tokens.count_prompt_tokens(prompt, model) + (
            tokens.count_tokens(system, model) + 4 if system else 0)
        delay = params.get("token_delay")
        if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int | float)
                                  or not 0 <= delay < float("inf")):
            from ember.models.params import InvalidParameterError

            raise InvalidParameterError("token_delay", "expected a number of seconds >= 0",
                                        delay)
        return pieces, prompt_tokens, finish, self.token_delay if delay is None else float(delay)

    def _usage(self, prompt_tokens: int, completion: int, model: str) -> UsageStats:
        return UsageStats(prompt_tokens, completion, estimated=not tokens.is_exact(model))

    def complete(self, prompt: Prompt, model: str, **params: Any) -> ChatResponse:
        """The whole answer at once (no pacing)."""
        pieces, prompt_tokens, finish, _ = self._plan(prompt, model, params)
        n = int(params.get("n") or 1)
        text = "".join(pieces)
        return ChatResponse(
            data=text, usage=self._usage(prompt_tokens, len(pieces) * n, model),
            model_id=f"offline/{model}", finish_reason=finish, raw_finish_reason=finish,
            choices=[Choice(i, text, [], finish) for i in range(n)] if n > 1 else None,
        )

    async def complete_async(self, prompt: Prompt, model: str, **params: Any) -> ChatResponse:
        """Same as :meth:`complete`, without a thread hop."""
        return self.complete(prompt, model, **params)

    async def embed_async(self, inputs: list[str], model: str, **params: Any) -> Any:
        """Deterministic unit vectors (hashed words, ``dimensions`` default 64): a stand-in
        that keeps identical texts identical and shared words close, not a semantic model."""
        import hashlib
        import math

        from ember.models.schemas import EmbeddingResponse

        size = int(params.get("dimensions") or 64)
        vectors = []
        used = 0
        for text in inputs:
            vec = [0.0] * size
            for word in text.lower().split():
                h = hashlib.blake2b(word.encode(), digest_size=8).digest()
                vec[int.from_bytes(h[:4], "little") % size] += 1.0 if h[4] & 1 else -1.0
            norm = math.sqrt(sum(v * v for v in vec)) or 1.0
            vectors.append([v / norm for v in vec])
            used += tokens.count_tokens(text, model)
        return EmbeddingResponse(vectors, UsageStats(used, 0, estimated=True), f"offline/{model}")

    def stream(self, prompt: Prompt, model: str, **params: Any) -> Iterator[StreamChunk]:
        """One chunk per token, ``token_delay`` seconds apart."""
        pieces, prompt_tokens, finish, delay = self._plan(prompt, model, params)
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            if delay and i:
                time.sleep(delay)
            yield StreamChunk(text=piece, finish_reason=finish if i == last else None)
        if not pieces:
            yield StreamChunk(finish_reason=finish)
        yield StreamChunk(usage=self._usage(prompt_tokens, len(pieces), model))

    async def stream_async(
        self, prompt: Prompt, model: str, **params: Any
    ) -> AsyncIterator[StreamChunk]:
        """Async twin of :meth:`stream` (sleeps with ``asyncio.sleep``)."""
        pieces, prompt_tokens, finish, delay = self._plan(prompt, model, params)
        n = int(params.get("n") or 1)
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            if delay and i:
                await asyncio.sleep(delay)
            for index in range(n):
                yield StreamChunk(text=piece, finish_reason=finish if i == last else None,
                                  index=index)
        if not pieces:
            for index in range(n):
                yield StreamChunk(finish_reason=finish, index=index)
        yield StreamChunk(usage=self._usage(prompt_tokens, len(pieces) * n, model))
