"""Routing one prompt over several models: fallback, cost, latency, round robin, least busy.

    router = ModelRouter(["gpt-4o-mini", "claude-haiku-4-5", "offline/echo"],
                         strategy="fallback")
    response = await router.complete("Summarise ...")    # or await router.acomplete(...)
    response = router("Summarise ...")                   # blocking, from sync code
    async for chunk in router.stream("Tell me a story"): # fallback before the first token
        ...

Retries with exponential backoff (and jitter, honouring ``Retry-After``) on
``rate_limit``, ``server``, ``timeout`` and ``connection`` errors, then moves on
to the next model; a model that keeps failing cools down for ``cooldown`` seconds
(it is tried last meanwhile, never skipped, so a request always has a model).
A model whose provider has no API key on this install (a ``ModelProviderError``
configuration error) is skipped, with one warning per model, and the next one is
tried; ``authentication`` and ``bad_request`` errors are raised at once, untouched:
they will not get better elsewhere and the caller must see them.  When every model fails, the last
provider error is raised with its ``error_type`` intact and
``context["attempted_models"]`` listing what was tried.  The router owns the
retries: calls go to HTTP providers with ``max_retries=0`` (unless given).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

logger = logging.getLogger("ember.ai.router")
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


def _missing_key(exc: BaseException) -> bool:
    """A configuration error saying the provider has no API key (ModelProviderError)."""
    context = getattr(exc, "context", None)
    return (type(exc).__name__ == "ModelProviderError" and isinstance(context, dict)
            and context.get("reason") == "missing_api_key")


def _error_type(exc: BaseException) -> str | None:
    context = getattr(exc, "context", None)
    return context.get("error_type") if isinstance(context, dict) else None


class ModelRouter:
    """Choose among ``models`` per ``strategy``; see the module docstring.

    ``max_retries`` retries per model (with ``backoff`` seconds, doubling), a
    model goes into ``cooldown`` after ``failure_threshold`` exhausted attempts in
    a row; other keyword arguments are default parameters of every call.
    """

    def __init__(self, models: Sequence[str], strategy: str = "fallback", *,
                 max_retries: int = 1, backoff: float = 0.25, cooldown: float = 30.0,
                 failure_threshold: int = 1, registry: Any = None, **defaults: Any) -> None:
        if isinstance(models, str) or not models or not all(isinstance(m, str) for m in models):
            raise ValueError("ModelRouter needs a non-empty list of model ids")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        if max_retries < 0 or backoff < 0 or cooldown < 0 or failure_threshold < 1:
            raise ValueError("max_retries, backoff and cooldown must not be negative, "
                             "failure_threshold must be at least 1")
        self.models = list(dict.fromkeys(models))
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
        self._unavailable: set[str] = set()

    # -- choosing ---------------------------------------------------------------------

    def registry(self) -> Any:
        """The model registry calls go through (the process default unless given)."""
        if self._registry is None:
            from ember.models.api import default_registry

            self._registry = default_registry()
        return self._registry

    def _price(self, model: str) -> float:
        """Input + output USD per 1M tokens; unknown prices sort last."""
        registry = self.registry()
        try:
            binding = registry.get_model(model)
        except Exception:
            return float("inf")
        if binding.free:
            return 0.0
        price = registry.pricing.price(binding.provider_name, binding.model)
        if price is None:
            return float("inf")
        return float(price.input) + float(price.output)

    def order(self) -> list[str]:
        """The models to try, best first, cooling-down ones last."""
        now = time.monotonic()
        models = list(self.models)
        if self.strategy == "cost":
            models.sort(key=self._price)
        elif self.strategy == "latency":
            # NOTE: unmeasured models first, so that each gets measured once.
            models.sort(key=lambda m: -1.0 if self._state[m].latency is None
                        else self._state[m].latency)
        elif self.strategy == "round_robin":
            start = next(self._rr) % len(models)
            models = models[start:] + models[:start]
        elif self.strategy == "least_busy":
            models.sort(key=lambda m: self._state[m].in_flight)
        ready = [m for m in models if self._state[m].cooldown_until <= now]
        cooling = sorted((m for m in models if self._state[m].cooldown_until > now),
                         key=lambda m: self._state[m].cooldown_until)
        return ready + cooling

    def _params(self, model: str, params: dict[str, Any]) -> dict[str, Any]:
        merged = {**self.defaults, **params}
        if "max_retries" not in merged:
            from ember.models.providers._http import HTTPProvider

            try:
                provider = self.registry().get_model(model).provider
            except Exception:
                return merged  # NOTE: the call itself raises the configuration error
            if isinstance(provider, HTTPProvider):
                merged["max_retries"] = 0
        return merged

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

    def _retry_delay(self, model: str, attempt: int, exc: Exception) -> float | None:
        """Seconds before retrying ``model``; None to move on; raises what must not be retried."""
        if _missing_key(exc):
            # NOTE: a model this install has no key for is not available here: move on
            # (the listed order is the user's fallback plan); raised when nothing answers.
            if model not in self._unavailable:
                self._unavailable.add(model)
                logger.warning("ModelRouter: skipping %s: %s", model, exc)
            return None
        if _error_type(exc) not in _RETRYABLE:
            raise exc
        if attempt >= self.max_retries:
            self._failed(model)
            return None
        retry_after = exc.context.get("retry_after")  # type: ignore[attr-defined]
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
            context["attempted_models"] = list(dict.fromkeys(tried))
        return last

    def _begin(self, model: str) -> float:
        with self._lock:
            self._state[model].in_flight += 1
        return time.monotonic()

    def _end(self, model: str) -> None:
        with self._lock:
            self._state[model].in_flight -= 1

    # -- async -------------------------------------------------------------------------

    async def acomplete(self, prompt: Any, **params: Any) -> Any:
        """A completion from the first model (per strategy) that answers."""
        registry = self.registry()
        tried: list[str] = []
        last: Exception | None = None
        for model in self.order():
            merged = self._params(model, params)
            for attempt in itertools.count():
                tried.append(model)
                started = self._begin(model)
                try:
                    response = await registry.invoke_model_async(model, prompt, **merged)
                except Exception as exc:
                    last = exc
                    delay = self._retry_delay(model, attempt, exc)
                    if delay is None:
                        break
                    await asyncio.sleep(delay)
                    continue
                finally:
                    self._end(model)
                self._succeeded(model, time.monotonic() - started)
                return response
        raise self._final(last, tried)

    async def astream(self, prompt: Any, **params: Any) -> AsyncIterator[Any]:
        """Stream chunks from the first model that starts; no fallback after the first chunk."""
        registry = self.registry()
        tried: list[str] = []
        last: Exception | None = None
        for model in self.order():
            merged = self._params(model, params)
            for attempt in itertools.count():
                tried.append(model)
                started = self._begin(model)
                iterator: Any = None
                try:
                    try:
                        # NOTE: inside the try: a provider that cannot be built raises here
                        iterator = registry.stream_model_async(model, prompt, **merged)
                        iterator = iterator.__aiter__()
                        first = await iterator.__anext__()
                    except StopAsyncIteration:
                        self._succeeded(model, time.monotonic() - started)
                        return
                    except Exception as exc:
                        last = exc
                        delay = self._retry_delay(model, attempt, exc)
                        if delay is None:
                            break
                        await asyncio.sleep(delay)
                        continue
                    yield first
                    # NOTE: committed to this model now: a later error propagates as is.
                    async for chunk in iterator:
                        yield chunk
                    self._succeeded(model, time.monotonic() - started)
                    return
                finally:
                    self._end(model)
                    close = getattr(iterator, "aclose", None)
                    if close is not None:
                        await close()
        raise self._final(last, tried)

    # -- sync ----------------------------------------------------------------------------

    def complete_sync(self, prompt: Any, **params: Any) -> Any:
        """Blocking twin of :meth:`acomplete`."""
        registry = self.registry()
        tried: list[str] = []
        last: Exception | None = None
        for model in self.order():
            merged = self._params(model, params)
            for attempt in itertools.count():
                tried.append(model)
                started = self._begin(model)
                try:
                    response = registry.invoke_model(model, prompt, **merged)
                except Exception as exc:
                    last = exc
                    delay = self._retry_delay(model, attempt, exc)
                    if delay is None:
                        break
                    time.sleep(delay)
                    continue
                finally:
                    self._end(model)
                self._succeeded(model, time.monotonic() - started)
                return response
        raise self._final(last, tried)

    def stream_sync(self, prompt: Any, **params: Any) -> Iterator[Any]:
        """Blocking twin of :meth:`astream`."""
        registry = self.registry()
        tried: list[str] = []
        last: Exception | None = None
        for model in self.order():
            merged = self._params(model, params)
            for attempt in itertools.count():
                tried.append(model)
                started = self._begin(model)
                iterator = None
                try:
                    try:
                        iterator = iter(registry.stream_model(model, prompt, **merged))
                        first = next(iterator)
                    except StopIteration:
                        self._succeeded(model, time.monotonic() - started)
                        return
                    except Exception as exc:
                        last = exc
                        delay = self._retry_delay(model, attempt, exc)
                        if delay is None:
                            break
                        time.sleep(delay)
                        continue
                    yield first
                    yield from iterator
                    self._succeeded(model, time.monotonic() - started)
                    return
                finally:
                    self._end(model)
                    close = getattr(iterator, "close", None)
                    if close is not None:
                        close()
        raise self._final(last, tried)

    # -- either ----------------------------------------------------------------------------

    def complete(self, prompt: Any, **params: Any) -> Any:
        """``await router.complete(...)`` in async code; the response itself in sync code.

        NOTE: decided by whether an event loop runs in this thread: inside one this
        returns a coroutine (blocking the loop would stall every other request).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self.complete_sync(prompt, **params)
        return self.acomplete(prompt, **params)

    def __call__(self, prompt: Any, **params: Any) -> Any:
        """Blocking completion: ``router("Hi").text``."""
        return self.complete_sync(prompt, **params)

    def stream(self, prompt: Any, **params: Any) -> RouterStream:
        """Chunks with fallback before the first one: ``async for`` or plain ``for``."""
        return RouterStream(self, prompt, params)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-model calls, failures, cooldown and latency (for dashboards and tests)."""
        now = time.monotonic()
        return {m: {"calls": s.calls, "failures": s.failures, "in_flight": s.in_flight,
                    "cooling_down": s.cooldown_until > now, "latency": s.latency}
                for m, s in self._state.items()}

    def __repr__(self) -> str:
        return f"ModelRouter({self.models!r}, strategy={self.strategy!r})"


class RouterStream:
    """What :meth:`ModelRouter.stream` returns: iterable with ``async for`` and ``for``."""

    def __init__(self, router: ModelRouter, prompt: Any, params: dict[str, Any]) -> None:
        self._router = router
        self._prompt = prompt
        self._params = params

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._router.astream(self._prompt, **self._params)

    def __iter__(self) -> Iterator[Any]:
        return self._router.stream_sync(self._prompt, **self._params)
