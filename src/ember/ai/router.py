"""Routing one prompt over several models: fallback, cost, latency, round robin, least busy.

    router = ModelRouter(["gpt-4o-mini", "claude-haiku-4-5", "offline/echo"],
                         strategy="fallback")
    response = await router.complete("Summarise ...")    # or await router.acomplete(...)
    response = router("Summarise ...")                   # blocking, from sync code
    async for chunk in router.stream("Tell me a story"): # fallback before the first token
        ...

Retries follow one :class:`~ember.models.retry.RetryPolicy` (the one the HTTP
providers use): exponential backoff with jitter on ``rate_limit``, ``server``,
``timeout`` and ``connection`` errors, a provider's ``Retry-After`` honoured as given
(longer than the policy's ``max_wait``: the next model is tried at once, never a
shortened wait), then the next model; a model that keeps failing cools down for
``cooldown`` seconds
(it is tried last meanwhile, never skipped, so a request always has a model).
A model whose provider has no API key on this install (a ``ModelProviderError``
configuration error) is skipped, with one warning per model, and the next one is
tried; ``authentication`` and ``bad_request`` errors are raised at once, untouched:
they will not get better elsewhere and the caller must see them.  When every model fails, the last
provider error is raised with its ``error_type`` intact and
``context["attempted_models"]`` listing what was tried.  The router owns the
retries: calls go to HTTP providers with ``max_retries=0`` (unless given).

``first_token_timeout`` (seconds; per router, per call, or for every router the
``EMBER_MODEL_FIRST_TOKEN_TIMEOUT`` environment variable — so the gateway's fallback
lists too) abandons a stream whose
upstream sends nothing but keep-alives before its first token and tries the next
model (``async`` streams; a stream never falls back after its first token).
:meth:`ModelRouter.stream` returns a :class:`RouterStream` that carries the usage of
every attempt once it ends (``.usage``, ``.calls``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from ember.ai._router_streams import RouterStream, StreamingMixin
from ember.models.retry import RetryPolicy, run_async, run_sync

logger = logging.getLogger("ember.ai.router")
STRATEGIES = ("fallback", "cost", "latency", "round_robin", "least_busy")


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


def _env_first_token_timeout() -> float | None:
    """``EMBER_MODEL_FIRST_TOKEN_TIMEOUT`` (seconds; unset or empty: none)."""
    import os

    raw = os.environ.get("EMBER_MODEL_FIRST_TOKEN_TIMEOUT", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ValueError(f"EMBER_MODEL_FIRST_TOKEN_TIMEOUT={raw!r} must be a positive number "
                         f"of seconds")
    return value


class ModelRouter(StreamingMixin):
    """Choose among ``models`` per ``strategy``; see the module docstring.

    ``max_retries`` retries per model (with ``backoff`` seconds, doubling, waits
    capped at ``max_wait``), a model goes into ``cooldown`` after
    ``failure_threshold`` exhausted attempts in a row, ``first_token_timeout`` (or
    None) bounds the wait for a stream's first token; or give all of it as one
    ``policy=RetryPolicy(...)``. Other keyword arguments are default parameters of
    every call (``first_token_timeout`` may also be given per call).
    """

    def __init__(self, models: Sequence[str], strategy: str = "fallback", *,
                 max_retries: int = 1, backoff: float = 0.25, cooldown: float = 30.0,
                 failure_threshold: int = 1, max_wait: float = 10.0,
                 first_token_timeout: float | None = None, policy: RetryPolicy | None = None,
                 registry: Any = None, **defaults: Any) -> None:
        if isinstance(models, str) or not models or not all(isinstance(m, str) for m in models):
            raise ValueError("ModelRouter needs a non-empty list of model ids")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        if first_token_timeout is None:
            first_token_timeout = _env_first_token_timeout()
        if policy is None:
            policy = RetryPolicy(max_retries, backoff, max_wait, cooldown=cooldown,
                                 failure_threshold=failure_threshold,
                                 first_token_timeout=first_token_timeout)
        elif not isinstance(policy, RetryPolicy):
            raise ValueError(f"policy must be a RetryPolicy, got {policy!r}")
        self.policy = policy
        self.models = list(dict.fromkeys(models))
        self.strategy = strategy
        self.defaults = defaults
        self._registry = registry
        self._state = {m: _ModelState() for m in self.models}
        self._rr = itertools.count()
        self._lock = threading.Lock()
        self._unavailable: set[str] = set()

    max_retries = property(lambda self: self.policy.max_retries)
    backoff = property(lambda self: self.policy.backoff)
    cooldown = property(lambda self: self.policy.cooldown)
    failure_threshold = property(lambda self: self.policy.failure_threshold)
    first_token_timeout = property(lambda self: self.policy.first_token_timeout)

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
        merged.pop("first_token_timeout", None)
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

    def _give_up(self, model: str, exc: Exception) -> None:
        """``model`` failed for good (its retries done): move on, or raise what must not."""
        if _missing_key(exc):
            # NOTE: a model this install has no key for is not available here: move on
            # (the listed order is the user's fallback plan); raised when nothing answers.
            if model not in self._unavailable:
                self._unavailable.add(model)
                logger.warning("ModelRouter: skipping %s: %s", model, exc)
            return
        context = getattr(exc, "context", None)
        stalled = isinstance(context, dict) and context.get("first_token_timeout")
        if not stalled and not self.policy.retryable(exc, malformed=True):
            raise exc  # NOTE: authentication, bad requests: not better elsewhere
        self._failed(model)

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

    # -- drivers: one per model, retries by the policy (run_async / run_sync) ----------

    async def acomplete(self, prompt: Any, **params: Any) -> Any:
        """A completion from the first model (per strategy) that answers."""
        registry = self.registry()
        tried: list[str] = []
        last: Exception | None = None
        for model in self.order():
            merged = self._params(model, params)

            async def attempt(model: str = model, merged: dict[str, Any] = merged) -> Any:
                tried.append(model)
                started = self._begin(model)
                try:
                    response = await registry.invoke_model_async(model, prompt, **merged)
                finally:
                    self._end(model)
                self._succeeded(model, time.monotonic() - started)
                return response

            try:
                return await run_async(self.policy, attempt, malformed=True)
            except Exception as exc:
                last = exc
                self._give_up(model, exc)
        raise self._final(last, tried)

    def complete_sync(self, prompt: Any, **params: Any) -> Any:
        """Blocking twin of :meth:`acomplete`."""
        registry = self.registry()
        tried: list[str] = []
        last: Exception | None = None
        for model in self.order():
            merged = self._params(model, params)

            def attempt(model: str = model, merged: dict[str, Any] = merged) -> Any:
                tried.append(model)
                started = self._begin(model)
                try:
                    response = registry.invoke_model(model, prompt, **merged)
                finally:
                    self._end(model)
                self._succeeded(model, time.monotonic() - started)
                return response

            try:
                return run_sync(self.policy, attempt, malformed=True)
            except Exception as exc:
                last = exc
                self._give_up(model, exc)
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
