"""The worst case of a request, reserved before the upstream call (never an undercount).

* **Prompt**: the request body's size in bytes, images apart: each image part is
  bounded by its provider's rule from its pixel size (:mod:`ember.gateway.images`;
  :data:`IMAGE_TOKENS` by URL to a provider without one).  Every tokenizer in use (byte-level BPE, SentencePiece with byte fallback)
  makes at most one token per byte, and the JSON around the text is larger than each
  message's framing tokens — so this bounds every provider's count without running a
  tokenizer (cheap: no pass over the text).
* **Output**: ``max_completion_tokens`` or ``max_tokens`` when the client set one; else
  the model's output limit when the price table knows it; else the gateway's
  ``default_max_tokens`` (4096), which is then **sent upstream** (as
  ``max_completion_tokens``, or ``max_tokens`` to OpenAI-compatible servers) so the bound
  holds.  Multiplied by ``n``.
* **Price**: a fallback list is priced at its most expensive model (input and output
  each); a model without a price costs 0 (token budgets still hold).
"""

from __future__ import annotations

from typing import Any

#: Tokens reserved per image part (OpenAI high detail tops out near 1,100 tokens per
#: 2048-px tile set, Claude at ~1,600 per image; 2,000 bounds both).
IMAGE_TOKENS = 2000
#: Providers whose parameter tables map ``max_completion_tokens``.
_NATIVE = frozenset({"openai", "anthropic", "google", "offline"})
#: Output tokens reserved (and sent upstream) when the request sets no maximum.
DEFAULT_MAX_TOKENS = 4096


class Prices:
    """Per target: the highest input and output price (USD per token) and output cap."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[float, float, int | None]] = {}
        self._names: dict[int, str] = {}
        self._models: dict[int, list[tuple[str, str]]] = {}
        self._pricing: Any = None

    def of(self, target: Any) -> tuple[float, float, int | None]:
        """``(input USD/token, output USD/token, output limit or None)`` for ``target``."""
        hit = self._cache.get(id(target))
        if hit is not None:
            return hit
        if self._pricing is None:
            from ember.models.pricing import Pricing

            self._pricing = Pricing()
        from ember.models.resolution import resolve_model_id

        inp = out = 0.0
        limits: list[int | None] = []
        name = "max_completion_tokens"
        models: list[tuple[str, str]] = []
        for model in target.ids():
            try:
                provider, bare = resolve_model_id(model)
                models.append((provider, bare))
                price = self._pricing.price(provider, bare)
            except Exception:  # NOTE: an unknown model fails at call time, with its reason
                provider, price = "", None
                models.append(("", model))
            if provider not in _NATIVE:
                name = "max_tokens"  # NOTE: what every OpenAI-compatible server knows
            if price is not None:
                inp = max(inp, price.input / 1_000_000)
                out = max(out, price.output / 1_000_000)
            limits.append(getattr(price, "max_output_tokens", None) if price else None)
        cap = max(limits) if limits and all(x is not None for x in limits) else None
        self._names[id(target)] = name
        self._models[id(target)] = models
        hit = self._cache[id(target)] = (inp, out, cap)  # type: ignore[assignment]
        return hit  # type: ignore[return-value]

    def cap_name(self, target: Any) -> str:
        """The parameter that caps the output of ``target``: ``max_completion_tokens``
        (OpenAI reasoning models refuse ``max_tokens``; Anthropic and Gemini rename it),
        ``max_tokens`` when a model is served by an OpenAI-compatible server."""
        self.of(target)
        return self._names[id(target)]

    def models(self, target: Any) -> list[tuple[str, str]]:
        """``(provider, bare model)`` of each model of ``target`` (a fallback list)."""
        self.of(target)
        return self._models[id(target)]

    def output(self, model_key: str) -> float:
        """USD per output token of a concrete ``provider/model`` (0 when unknown)."""
        if self._pricing is None:
            from ember.models.pricing import Pricing

            self._pricing = Pricing()
        provider, _, bare = model_key.partition("/")
        try:
            price = self._pricing.price(provider, bare)
        except Exception:
            return 0.0
        return price.output / 1_000_000 if price else 0.0


def worst_case(prices: Prices, target: Any, raw_size: int, images: int,
               body: dict[str, Any], default_max_tokens: int,
               image_tokens: int = 0) -> tuple[int, int, float, bool]:
    """``(prompt tokens, total tokens, cost USD, inject)`` reserved for a chat request;
    ``inject`` is True when ``max_tokens`` must be sent upstream to keep the bound.
    ``images``: image parts of unknown size; ``image_tokens``: the bound of the others
    (:mod:`ember.gateway.images`), whose bytes ``raw_size`` leaves out."""
    inp, out, cap = prices.of(target)
    prompt = raw_size + IMAGE_TOKENS * images + image_tokens
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    inject = False
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        limit = cap
        if limit is None:
            limit = default_max_tokens
            inject = True
    n = body.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    output = limit * choices
    return prompt, prompt + output, prompt * inp + output * out, inject
