"""Prices per model: the packaged ``pricing.json`` plus environment overrides.

Prices are USD per **1M** tokens. Lookup order for ``provider/model``:

1. ``EMBER_COST_<MODEL>_INPUT`` / ``EMBER_COST_<MODEL>_OUTPUT`` where ``<MODEL>``
   is the bare model name upper-cased with every non-alphanumeric run turned
   into ``_`` (``GPT_4O_MINI``) or removed (``GPT4OMINI``);
2. ``EMBER_MODEL_COSTS_JSON``: ``{"gpt-4": {"input": 30, "output": 60}}``,
   keys bare or ``provider/model``;
3. the packaged defaults (never mutated), also trying the undated name
   (``claude-3-5-sonnet-20241022`` -> ``claude-3-5-sonnet``) and, for a
   provider with no entry of its own (``azure/gpt-4``), the same bare model
   under another provider.

Per token class: ``cached_input`` (input read from the prompt cache) and
``cache_write`` (input written to it) — in the table, the JSON entries and
``EMBER_COST_<MODEL>_CACHED_INPUT`` / ``_CACHE_WRITE``; absent, they cost ``input``.
Reasoning and audio tokens are priced as output / input (they are part of those counts).

A model with no price costs 0 and triggers one :class:`PricingWarning`.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import warnings
from collections.abc import Mapping, MutableMapping
from importlib import resources
from types import MappingProxyType
from typing import Any, NamedTuple

from ember.models.exceptions import ModelProviderError

COSTS_JSON_ENV = "EMBER_MODEL_COSTS_JSON"
_DATE_SUFFIX = re.compile(r"(-\d{8}|-\d{4}-\d{2}-\d{2}|-latest|-preview(-[\w-]+)?|-exp(-[\w-]+)?|-\d{3})$")


class PricingWarning(UserWarning):
    """A model has no known price; its calls are counted as costing 0."""


class ModelPrice(NamedTuple):
    """USD per 1M input and output tokens, the context window (tokens), and the prices of
    cached input read and written (None: the ``input`` price)."""

    input: float
    output: float
    context_window: int | None = None
    cached_input: float | None = None
    cache_write: float | None = None


_defaults: Mapping[str, ModelPrice] | None = None
_defaults_lock = threading.Lock()


def default_prices() -> Mapping[str, ModelPrice]:
    """The packaged price table, read once, as a read-only mapping."""
    global _defaults
    if _defaults is None:
        with _defaults_lock:
            if _defaults is None:
                raw = json.loads(resources.files("ember.models").joinpath("pricing.json").read_text())
                table = {
                    key: ModelPrice(float(v["input"]), float(v["output"]), v.get("context_window"),
                                    _opt(v.get("cached_input")), _opt(v.get("cache_write")))
                    for key, v in raw["models"].items()
                }
                _defaults = MappingProxyType(table)
    return _defaults


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


_KEYS = frozenset({"input", "output", "context_window", "cached_input", "cache_write"})
_PRICED = frozenset({"input", "output", "cached_input", "cache_write"})
_SUFFIXES = (("input", "_INPUT"), ("output", "_OUTPUT"), ("cached_input", "_CACHED_INPUT"),
             ("cache_write", "_CACHE_WRITE"))


def env_names(model: str) -> tuple[str, ...]:
    """The ``EMBER_COST_<MODEL>`` prefixes checked for ``model`` (bare name)."""
    upper = model.upper()
    names = [re.sub(r"[^A-Z0-9]+", "_", upper).strip("_"), re.sub(r"[^A-Z0-9]", "", upper)]
    return tuple(dict.fromkeys(f"EMBER_COST_{n}" for n in names))


def _parse_float(var: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ModelProviderError(
            f"{var}={value!r} is not a number: give USD per 1M tokens, e.g. {var}=2.5",
            context={"variable": var},
        ) from None
    if number < 0 or number != number or number == float("inf"):
        raise ModelProviderError(
            f"{var}={value!r} must be a finite, non-negative USD price per 1M tokens",
            context={"variable": var},
        )
    return number


def _parse_costs_json(text: str) -> dict[str, dict[str, float]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ModelProviderError(
            f"{COSTS_JSON_ENV} is not valid JSON ({exc}); expected "
            '{"model": {"input": <USD per 1M>, "output": <USD per 1M>}}',
            context={"variable": COSTS_JSON_ENV},
        ) from None
    if not isinstance(data, dict):
        raise ModelProviderError(
            f"{COSTS_JSON_ENV} must be a JSON object mapping model ids to "
            '{"input": ..., "output": ...}',
            context={"variable": COSTS_JSON_ENV},
        )
    out: dict[str, dict[str, float]] = {}
    for key, entry in data.items():
        if not isinstance(entry, dict) or not entry.keys() <= _KEYS:
            raise ModelProviderError(
                f"{COSTS_JSON_ENV}: entry {key!r} must be an object with 'input', 'output', "
                f"'cached_input', 'cache_write' (USD per 1M tokens) or 'context_window', "
                f"got {entry!r}",
                context={"variable": COSTS_JSON_ENV},
            )
        parsed: dict[str, float] = {}
        for field_name, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
                    or not math.isfinite(value):
                raise ModelProviderError(
                    f"{COSTS_JSON_ENV}: {key}.{field_name} must be a finite, non-negative number, "
                    f"got {value!r}",
                    context={"variable": COSTS_JSON_ENV},
                )
            parsed[field_name] = float(value)
        out[key] = parsed
    return out


class Pricing:
    """Price lookup with environment overrides; thread-safe, never mutates defaults."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._json_source: str | None = None
        self._json: dict[str, dict[str, float]] = {}
        self._base_cache: dict[str, ModelPrice | None] = {}
        self._env_cache: dict[str, tuple[str, ...]] = {}
        self._warned: set[str] = set()

    # -- lookup ---------------------------------------------------------------------------
    def _base(self, provider: str, model: str) -> ModelPrice | None:
        key = f"{provider}/{model}"
        try:
            return self._base_cache[key]
        except KeyError:
            pass
        table = default_prices()
        found = table.get(key)
        stripped = model
        while found is None:
            shorter = _DATE_SUFFIX.sub("", stripped)
            if shorter == stripped:
                break
            stripped = shorter
            found = table.get(f"{provider}/{stripped}")
        if found is None:
            # NOTE: a custom provider (azure/gpt-4) hosting a known model costs the same.
            for name in dict.fromkeys((model, stripped)):
                matches = {v for k, v in table.items() if k.split("/", 1)[1] == name}
                if len(matches) == 1:
                    found = matches.pop()
                    break
        self._base_cache[key] = found
        return found

    def _json_overrides(self) -> dict[str, dict[str, float]]:
        text = self._environ.get(COSTS_JSON_ENV)
        if text != self._json_source:
            self._json = _parse_costs_json(text) if text else {}
            self._json_source = text
        return self._json

    def price(self, provider: str, model: str) -> ModelPrice | None:
        """The effective price of ``provider/model``, or None when unknown."""
        base = self._base(provider, model)
        found: dict[str, float] = {}
        ctx = base.context_window if base else None
        overrides = self._json_overrides()
        if overrides:
            entry = overrides.get(f"{provider}/{model}") or overrides.get(model)
            if entry is None and "-" in model:
                undated = _DATE_SUFFIX.sub("", model)
                entry = overrides.get(f"{provider}/{undated}") or overrides.get(undated)
            if entry:
                found.update((k, v) for k, v in entry.items() if k in _PRICED)
                if "context_window" in entry:
                    ctx = int(entry["context_window"])
        names = self._env_cache.get(model)
        if names is None:
            names = self._env_cache[model] = env_names(model)
        env = self._environ
        for prefix in names:
            for name, suffix in _SUFFIXES:
                value = env.get(prefix + suffix)
                if value is not None:
                    found[name] = _parse_float(prefix + suffix, value)
        if not found:
            return base
        return ModelPrice(
            found.get("input", base.input if base else 0.0),
            found.get("output", base.output if base else 0.0),
            ctx,
            found.get("cached_input", base.cached_input if base else None),
            found.get("cache_write", base.cache_write if base else None),
        )

    def cost(self, provider: str, model: str, prompt_tokens: int, completion_tokens: int, *,
             cached: int = 0, cache_write: int = 0) -> float:
        """USD cost of a call; 0 (with a one-time warning) for an unpriced model.

        ``cached`` and ``cache_write`` are the parts of ``prompt_tokens`` read from and
        written to the prompt cache, priced at ``cached_input`` / ``cache_write``.
        """
        price = self.price(provider, model)
        if price is None:
            key = f"{provider}/{model}"
            if key not in self._warned:
                self._warned.add(key)
                warnings.warn(
                    f"no price known for model {key!r}; its usage is counted as costing $0. "
                    f"Set EMBER_COST_<MODEL>_INPUT/_OUTPUT or {COSTS_JSON_ENV} (USD per 1M tokens).",
                    PricingWarning,
                    stacklevel=4,
                )
            return 0.0
        cached = max(0, min(cached, prompt_tokens))
        cache_write = max(0, min(cache_write, prompt_tokens - cached))
        plain = prompt_tokens - cached - cache_write
        read_price = price.input if price.cached_input is None else price.cached_input
        write_price = price.input if price.cache_write is None else price.cache_write
        return (plain * price.input + cached * read_price + cache_write * write_price
                + completion_tokens * price.output) / 1_000_000


def known_models() -> list[str]:
    """Every canonical ``provider/model`` id in the packaged table."""
    return list(default_prices())


def context_window(provider: str, model: str, environ: MutableMapping[str, Any] | None = None) -> int | None:
    """The context window of a model, when known."""
    price = Pricing(environ).price(provider, model)
    return price.context_window if price else None
