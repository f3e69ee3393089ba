"""Routing one prompt over several models: fallback, cost, latency, round robin, least busy.

    router = ModelRouter(["gpt-4o-mini", "claude-haiku-4-5", "offline/echo"],
                         strategy="fallback")
    response = await router.acomplete("Summarise ...")     # or router("...") / router.complete
    async for chunk in router.astream("Tell me a story"):  # fallback before the first token
        ...

Retries with exponential backoff (and jitter) on ``rate_limit``, ``server``,
``timeout`` and ``connection`` errors, then moves on to the next model; a model
that keeps failing cools down for ``cooldown`` seconds.  ``authentication`` and
``bad_request`` errors are raised at once, untouched: they will not get better
elsewhere (and the caller must see them).  When every model fails, the last
provider error is raised with its ``error_type`` intact and
``context["attempted_models"]`` listing what was tried.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

STRATEGIES = ("fallback", "cost", "latency", "round_robin", "least_busy")
_RETRYABLE = frozenset(("rate_limit", "server", "timeout", "connection"))


class _ModelState:
    __slots__ = ("calls", "cooldown_until", "failures", "in_flight", "latency")

    def __init__(self) -> None:
        self.failures = 0
        self.cooldown_until = 0.0
        self.latency: float | None = None  # exponentially weighted seconds
        self.in_flight = 0
        self.calls = 0


def _error_type(exc: BaseException) -> str | None:
    context = getattr(exc, "context", None)
    if isinstance(context, dict):
        return context.get("error_type")
    return None


class ModelRouter:
    """Choose among ``models`` per ``strategy``; see the module docstring."""

    def __init__(self, models: Sequence[str], strategy: str = "fallback", *,
                 max_retries: int = 1, backoff: float = 0.25, cooldown: float = 30.0,
                 failure_threshold: int = 2, registry: Any = None, **defaults: Any) -> None:
        if isinstance(models, str) or not models:
            raise ValueError("ModelRouter needs a non-empty list of model ids")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        if max_retries < 0 or backoff < 0 or cooldown < 0:
            raise ValueError("max_retries, backoff and cooldown must not be negative")
        self.models = list(models)
        self.strategy = strategy
        self.max_retries = max_retries
        self.backoff = backoff
        self.cooldown = cooldown
        self.failure_threshold = failure_threshold
        self.defaults = defaults
        self._registry = registry
        self._state = {m: _ModelState() for m in self.models}
        self._rr = itertools.count()
        self._lock = threading.Lock()

    # -- choosing ---------------------------------------------------------------------

    def registry(self) -> Any:
        """The model registry calls go through (the process default unless given)."""
        if self._registry is None:
            from ember.models.api import default_registry

            self._registry = default_registry()
        return self._registry

    def _price(self, model: str) -> float:
        try:
            from ember.models.pricing import Pricing

            provider, _, bare = self.registry().canonical_id(model).partition("/")
            price = Pricing().price(provider, bare)
        except Exception:
            return float("inf")
        if not price:
            return 0.0 if model.startswith("offline/") else float("inf")
        if isinstance(price, dict):
            return float(price.get("input", 0)) + float(price.get("output", 0))
        return float(getattr(price, "input", 0)) + float(getattr(price, "output", 0))

    def order(self) -> list[str]:
        """The models to try, best first, cooling-down ones last."""
        now = time.monotonic()
        models = list(self.models)
        if self.strategy == "cost":
            models.sort(key=self._price)
        elif self.strategy == "latency":
            models.sort(key=lambda m: (self._state[m].latency is None,
                                       self._state[m].latency or 0.0))
        elif self.strategy == "round_robin":
            start = next(self._rr) % len(models)
            models = models[start:] + models[:start]
        elif self.strategy == "least_busy":
            models.sort(key=lambda m: self._state[m].in_flight)
        ready = [m for m in models if self._state[m].cooldown_until <= now]
        cooling = [m for m in models if self._state[m].cooldown_until > now]
        return ready + cooling

    def _succeeded(self, model: str, seconds: float) -> None:
        with self._lock:
            st = self._state[model]
            st.failures = 0
            st.cooldown_until = 0.0
            st.calls += 1
            st.latency = seconds if st.latency is None else 0.7 * st.latency + 0.3 * seconds

    def _failed(self, model: str) -> None:
        with self._lock:
            st = self._state[model]
            st.failures += 1
            if st.failures >= self.failure_threshold:
                st.cooldown_until = time.monotonic() + self.cooldown

    def _delay(self, attempt: int, exc: BaseException) -> float:
        retry_after = getattr(exc, "context", {}).get("retry_after") if hasattr(
            exc, "context") else None
        if retry_after is not None:
            return min(float(retry_after), 10.0)
        base = self.backoff * (2 ** attempt)
        return base + random.uniform(0, base)

    def _final(self, last: BaseException | None, tried: list[str]) -> BaseException:
        if last is None:
            from ember.models.exceptions import ModelProviderError

            return ModelProviderError("ModelRouter has no model to try")
        context = getattr(last, "context", None)
        if isinstance(context, dict):
            context["attempted_models"] = list(tried)
        return last

    # -- async -------------------------------------------------------------------------

    async def acomplete(self, prompt: Any, **params: Any) -> Any:
        """A completion from the first model (per strategy) that answers."""
        merged = {**self.defaults, **params}
        registry = self.registry()
        tried: list[str] = []
        last: BaseException | None = None
        for model in self.order():
            tried.append(model)
            for attempt in range(self.max_retries + 1):
                st = self._state[model]
                st.in_flight += 1
                started = time.monotonic()
                try:
                    response = await registry.invoke_model_async(model, prompt, **merged)
                except Exception as exc:
                    kind = _error_type(exc)
                    if kind is None or kind not in _RETRYABLE:
                        raise
                    last = exc
                    if attempt < self.max_retries:
                        await asyncio.sleep(self._delay(attempt, exc))
                        continue
                    self._failed(model)
                    break
                else:
                    self._succeeded(model, time.monotonic() - started)
                    return response
                finally:
                    st.in_flight -= 1
        raise self._final(last, tried)

    complete_async = acomplete

    async def astream(self, prompt: Any, **params: Any) -> AsyncIterator[Any]:
        """Stream from the first model that starts; no fallback after the first token."""
        merged = {**self.defaults, **params}
        registry = self.registry()
        tried: list[str] = []
        last: BaseException | None = None
        for model in self.order():
            tried.append(model)
            for attempt in range(self.max_retries + 1):
                started = time.monotonic()
                stream = registry.stream_model_async(model, prompt, **merged)
                iterator = stream.__aiter__()
                st = self._state[model]
                st.in_flight += 1
                try:
                    try:
                        first = await iterator.__anext__()
                    except StopAsyncIteration:
                        self._succeeded(model, time.monotonic() - started)
                        return
                    except Exception as exc:
                        kind = _error_type(exc)
                        if kind is None or kind not in _RETRYABLE:
                            raise
                        last = exc
                        if attempt < self.max_retries:
                            await asyncio.sleep(self._delay(attempt, exc))
                            continue
                        self._failed(model)
                        break
                    yield first
                    async for chunk in iterator:  # NOTE: committed: errors now propagate
                        yield chunk
                    self._succeeded(model, time.monotonic() - started)
                    return
                finally:
                    st.in_flight -= 1
                    close = getattr(iterator, "aclose", None)
                    if close is not None:
                        try:
                            await close()
                        except Exception:
                            pass
        raise self._final(last, tried)

    # -- sync ----------------------------------------------------------------------------

    def complete(self, prompt: Any, **params: Any) -> Any:
        """Blocking :meth:`acomplete` (from code without a running loop)."""
        merged = {**self.defaults, **params}
        registry = self.registry()
        tried: list[str] = []
        last: BaseException | None = None
        for model in self.order():
            tried.append(model)
            for attempt in range(self.max_retries + 1):
                started = time.monotonic()
                try:
                    response = registry.invoke_model(model, prompt, **merged)
                except Exception as exc:
                    kind = _error_type(exc)
                    if kind is None or kind not in _RETRYABLE:
                        raise
                    last = exc
                    if attempt < self.max_retries:
                        time.sleep(self._delay(attempt, exc))
                        continue
                    self._failed(model)
                    break
                self._succeeded(model, time.monotonic() - started)
                return response
        raise self._final(last, tried)

    __call__ = complete

    def stream(self, prompt: Any, **params: Any) -> Iterator[Any]:
        """Blocking stream with fallback before the first chunk."""
        merged = {**self.defaults, **params}
        registry = self.registry()
        tried: list[str] = []
        last: BaseException | None = None
        for model in self.order():
            tried.append(model)
            for attempt in range(self.max_retries + 1):
                started = time.monotonic()
                iterator = iter(registry.stream_model(model, prompt, **merged))
                try:
                    first = next(iterator)
                except StopIteration:
                    self._succeeded(model, time.monotonic() - started)
                    return
                except Exception as exc:
                    kind = _error_type(exc)
                    if kind is None or kind not in _RETRYABLE:
                        raise
                    last = exc
                    if attempt < self.max_retries:
                        time.sleep(self._delay(attempt, exc))
                        continue
                    self._failed(model)
                    break
                yield first
                yield from iterator
                self._succeeded(model, time.monotonic() - started)
                return
        raise self._final(last, tried)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-model calls, failures, cooldown and latency (for dashboards and tests)."""
        now = time.monotonic()
        return {m: {"calls": s.calls, "failures": s.failures, "in_flight": s.in_flight,
                    "cooling_down": s.cooldown_until > now, "latency": s.latency}
                for m, s in self._state.items()}

    def __repr__(self) -> str:
        return f"ModelRouter({self.models!r}, strategy={self.strategy!r})"
