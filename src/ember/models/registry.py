"""``ModelRegistry``: model id -> provider binding, usage and cost accounting, metrics.

Reads of the binding cache take no lock (a dict lookup); creating a binding
takes one ``threading.Lock`` with a double check. One provider instance (and
so one connection pool) is shared by every model of a provider.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from ember.models import tokens
from ember.models.exceptions import ModelError, ModelProviderError
from ember.models.params import check_values
from ember.models.pricing import Pricing
from ember.models.providers.base import BaseProvider, get_provider_factory
from ember.models.resolution import check_provider, resolve_model_id
from ember.models.schemas import ChatResponse, ToolCall, UsageStats, UsageSummary
from ember.models.streams import AsyncModelStream, ModelStream

logger = logging.getLogger("ember.models")


class Binding:
    """A resolved model id: its provider instance and the bare model name."""

    __slots__ = ("free", "key", "model", "provider", "provider_name")

    def __init__(self, provider: BaseProvider, provider_name: str, model: str) -> None:
        self.provider = provider
        self.provider_name = provider_name
        self.model = model
        self.key = f"{provider_name}/{model}"
        self.free = bool(getattr(provider, "free", False))

    def complete(self, prompt: Any, model: str | None = None, **params: Any) -> ChatResponse:
        """Call the provider directly (no usage accounting); ``model`` is ignored."""
        return self.provider.complete(prompt, self.model, **params)


class ModelRegistry:
    """Resolves model ids, invokes providers, and tracks usage and cost per model.

    ``metrics`` is an optional dict of Prometheus-style instruments, each used
    as ``instrument.labels(<model id>)`` (or directly when it has no labels):

    - ``"model_invocations"`` (Counter): ``inc()`` per call;
    - ``"invocation_duration"`` (Histogram): ``observe(seconds)`` per call;
    - ``"model_errors"`` (Counter, labels model and error type): ``inc()`` per failure;
    - ``"model_tokens"`` / ``"model_cost"`` (Counters): ``inc(total tokens / USD)``.
    """

    def __init__(self, metrics: Mapping[str, Any] | None = None, *,
                 pricing: Pricing | None = None) -> None:
        self._models: dict[str, Binding] = {}
        self._providers: dict[str, BaseProvider] = {}
        self._lock = threading.Lock()
        self._usage: dict[str, UsageSummary] = {}
        self._usage_lock = threading.Lock()
        self.metrics: Mapping[str, Any] = metrics or {}
        self.pricing = pricing or Pricing()

    # -- bindings ------------------------------------------------------------------------------
    def get_model(self, model_id: str) -> Binding:
        """The binding for ``model_id``, creating its provider on first use."""
        binding = self._models.get(model_id)  # fast path: no lock
        if binding is not None:
            return binding
        provider_name, bare = resolve_model_id(model_id)
        with self._lock:
            binding = self._models.get(model_id)  # double check
            if binding is not None:
                return binding
            provider = self._providers.get(provider_name)
            if provider is None:
                provider = self._create_provider(provider_name, model_id)
                self._providers[provider_name] = provider
            binding = Binding(provider, provider_name, bare)
            self._models[model_id] = binding
        return binding

    def _create_provider(self, name: str, model_id: str) -> BaseProvider:
        check_provider(name, model_id)
        env_prefix = name.upper().replace("-", "_")
        factory = get_provider_factory(name)
        api_key = os.environ.get(f"{env_prefix}_API_KEY") or None
        if factory is None:
            from ember.models.providers.compatible import OpenAICompatibleProvider

            return OpenAICompatibleProvider(api_key, name=name)
        try:
            return factory(api_key)
        except ModelProviderError as exc:
            if exc.context.get("reason") == "missing_api_key" and not exc.context.get("env_vars"):
                # NOTE: a custom provider that overrides _get_api_key_from_env (the seed's
                # Azure example reads AZURE_OPENAI_API_KEY) is asked which names it reads
                names = _env_names_read_by(factory) or [f"{env_prefix}_API_KEY"]
                raise ModelProviderError(
                    f"no API key for provider {name!r}: set {' or '.join(names)}",
                    context={**exc.context, "env_vars": names, "model": model_id},
                ) from exc
            exc.context.setdefault("model", model_id)
            raise

    def canonical_id(self, model_id: str) -> str:
        """``provider/model`` for any accepted spelling (``gpt-4`` -> ``openai/gpt-4``)."""
        binding = self._models.get(model_id)
        if binding is not None:
            return binding.key
        provider, bare = resolve_model_id(model_id)
        return f"{provider}/{bare}"

    # -- calls ---------------------------------------------------------------------------------
    def invoke_model(self, model_id: str, prompt: Any, **params: Any) -> ChatResponse:
        """Call ``model_id`` with ``prompt`` (str or chat messages); returns a ChatResponse."""
        binding = self._models.get(model_id) or self.get_model(model_id)
        if params:
            check_values(params)
            if "first_token_timeout" in params:
                _streams_only(params)
        started = time.perf_counter()
        try:
            response = binding.provider.complete(prompt, binding.model, **params)
        except Exception as exc:
            self._record(binding, model_id, None, started, exc)
            raise
        self._fill_usage(binding, prompt, response)
        self._record(binding, model_id, response, started, None)
        return response

    async def invoke_model_async(self, model_id: str, prompt: Any, **params: Any) -> ChatResponse:
        """Async twin of :meth:`invoke_model`."""
        binding = self._models.get(model_id) or self.get_model(model_id)
        if params:
            check_values(params)
            if "first_token_timeout" in params:
                _streams_only(params)
        started = time.perf_counter()
        try:
            response = await binding.provider.complete_async(prompt, binding.model, **params)
        except Exception as exc:
            self._record(binding, model_id, None, started, exc)
            raise
        self._fill_usage(binding, prompt, response)
        self._record(binding, model_id, response, started, None)
        return response

    async def embed_async(self, model_id: str, inputs: list[str], **params: Any) -> Any:
        """Embed ``inputs`` with ``model_id``: an EmbeddingResponse (vectors in input order)."""
        binding = self._models.get(model_id) or self.get_model(model_id)
        started = time.perf_counter()
        try:
            response = await binding.provider.embed_async(list(inputs), binding.model, **params)
        except Exception as exc:
            self._record(binding, model_id, None, started, exc)
            raise
        if response.usage.total_tokens == 0:
            response.usage = UsageStats(
                sum(tokens.count_tokens(t, binding.model) for t in inputs), 0, estimated=True)
        self._record(binding, model_id, response, started, None)
        return response

    def stream_model(self, model_id: str, prompt: Any, **params: Any) -> ModelStream:
        """A :class:`ModelStream` for ``model_id`` (the request starts on iteration)."""
        binding = self._models.get(model_id) or self.get_model(model_id)
        if params:
            check_values(params)
        return ModelStream(self, binding, model_id, prompt, params)

    def stream_model_async(self, model_id: str, prompt: Any, **params: Any) -> AsyncModelStream:
        """An :class:`AsyncModelStream` for ``model_id`` (use ``async for``)."""
        binding = self._models.get(model_id) or self.get_model(model_id)
        if params:
            check_values(params)
        return AsyncModelStream(self, binding, model_id, prompt, params)

    # -- usage ---------------------------------------------------------------------------------
    def estimate_usage(self, binding: Binding, prompt: Any, text: str,
                       calls: list[ToolCall] | None = None) -> UsageStats:
        """Count prompt and completion tokens locally (``estimated=True``)."""
        model = binding.model
        completion = tokens.count_tokens(text, model)
        for call in calls or ():
            completion += tokens.count_tokens(call.name + call.arguments, model) + 3
        return UsageStats(tokens.count_prompt_tokens(prompt, model), completion, estimated=True)

    def _fill_usage(self, binding: Binding, prompt: Any, response: ChatResponse) -> None:
        usage = response.usage
        if usage is None:
            response.usage = usage = UsageStats(estimated=True)
        if usage.estimated and usage.total_tokens == 0:
            response.usage = self.estimate_usage(binding, prompt, response.data,
                                                 response.tool_calls)

    def _record(self, binding: Binding, model_id: str, response: ChatResponse | None,
                started: float, error: BaseException | None) -> UsageStats | None:
        duration = time.perf_counter() - started
        usage = response.usage if response is not None else None
        if usage is not None and not binding.free and usage.cost == 0.0:
            usage.cost = self.pricing.cost(binding.provider_name, binding.model,
                                           usage.prompt_tokens, usage.completion_tokens,
                                           cached=usage.cached_tokens,
                                           cache_write=usage.cache_creation_tokens)
        with self._usage_lock:
            summary = self._usage.get(binding.key)
            if summary is None:
                summary = self._usage[binding.key] = UsageSummary(binding.key)
            summary.request_count += 1
            if error is not None:
                summary.error_count += 1
            if usage is not None:
                summary.total_usage = summary.total_usage + usage
        if self.metrics:
            self._observe(model_id, duration, usage, error)
        if response is not None and hasattr(response, "model_key"):
            response.model_key = binding.key
        # NOTE: Prometheus model tokens/cost for every call, without importing
        # observability (it is loaded once an app uses Metrics).
        obs = sys.modules.get("ember.observability")
        if obs is not None and usage is not None:
            hook = getattr(obs, "record_model_call", None)
            if hook is not None:
                hook(binding.key, usage.prompt_tokens, usage.completion_tokens, usage.cost)
        return usage

    def _observe(self, model_id: str, duration: float, usage: UsageStats | None,
                 error: BaseException | None) -> None:
        m = self.metrics
        _labels(m.get("model_invocations"), model_id, lambda i: i.inc())
        _labels(m.get("invocation_duration"), model_id, lambda i: i.observe(duration))
        if error is not None:
            kind = error.context.get("error_type", "config") if isinstance(
                error, ModelError) else type(error).__name__
            _labels(m.get("model_errors"), (model_id, kind), lambda i: i.inc())
        if usage is not None:
            _labels(m.get("model_tokens"), model_id, lambda i: i.inc(usage.total_tokens))
            _labels(m.get("model_cost"), model_id, lambda i: i.inc(usage.cost))

    def get_usage_summary(self, model_id: str) -> UsageSummary | None:
        """A snapshot of ``model_id``'s usage (``gpt-4`` and ``openai/gpt-4`` are one), or None."""
        try:
            key = self.canonical_id(model_id)
        except ModelProviderError:
            return None
        with self._usage_lock:
            summary = self._usage.get(key)
            if summary is None:
                return None
            return UsageSummary(summary.model_name, summary.request_count,
                                summary.total_usage + UsageStats(), summary.error_count)

    def get_usage_summaries(self) -> dict[str, UsageSummary]:
        """Snapshots for every model used, keyed ``provider/model``."""
        with self._usage_lock:
            keys = list(self._usage)
        return {k: s for k in keys if (s := self.get_usage_summary(k)) is not None}

    def list_models(self) -> list[str]:
        """Model ids bound so far."""
        return list(self._models)

    def reset_usage(self) -> None:
        """Forget all recorded usage."""
        with self._usage_lock:
            self._usage.clear()

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Close every provider's sync connection pool and forget the bindings."""
        with self._lock:
            providers = list(self._providers.values())
            self._providers.clear()
            self._models.clear()
        for provider in providers:
            provider.close()

    async def aclose(self) -> None:
        """Close every provider's pools (sync, and async for the running loop)."""
        with self._lock:
            providers = list(self._providers.values())
            self._providers.clear()
            self._models.clear()
        for provider in providers:
            await provider.aclose()

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _streams_only(params: dict[str, Any]) -> None:
    """``first_token_timeout`` bounds a stream's wait for its first token; a completed call
    has no first token (``timeout`` bounds it): checked, then left out."""
    from ember.models.retry import check_first_token_timeout

    check_first_token_timeout(params.pop("first_token_timeout"))


def _labels(instrument: Any, labels: Any, action: Any) -> None:
    if instrument is None:
        return
    values = labels if isinstance(labels, tuple) else (labels,)
    try:
        names = getattr(instrument, "_labelnames", None)
        if names is not None:  # prometheus_client
            if not names:
                action(instrument)
                return
            values = (values + ("",) * len(names))[: len(names)]
            action(instrument.labels(*values))
        elif hasattr(instrument, "labels"):
            action(instrument.labels(*values))
        else:
            action(instrument)
    except Exception:  # NOTE: a broken metric must not fail the model call
        logger.exception("metrics instrument %r failed", instrument)


def _env_names_read_by(factory: Any) -> list[str]:
    """Environment variable names a provider's own ``_get_api_key_from_env`` reads.

    Found in its source (``os.getenv("X")``, ``os.environ.get("X")``,
    ``os.environ["X"]``); empty when it does not override the method or reads no
    literal name.
    """
    import inspect
    import re

    from ember.models.providers.base import BaseProvider

    method = getattr(factory, "_get_api_key_from_env", None)
    if method is None or method is BaseProvider._get_api_key_from_env:
        return []
    try:
        source = inspect.getsource(method)
    except (OSError, TypeError):
        return []
    pattern = r"""(?:getenv|environ\.get|environ\[)\(?\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""
    return list(dict.fromkeys(re.findall(pattern, source)))
