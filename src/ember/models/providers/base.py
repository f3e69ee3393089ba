"""``BaseProvider`` — what a model provider implements — and the provider table.

A provider needs only :meth:`BaseProvider.complete`; streaming and async
default to adapters over it. Built-in HTTP providers override all four.

    register_provider("azure", AzureOpenAIProvider)
    models("azure/gpt-4", "Hello")      # AzureOpenAIProvider(api_key).complete(...)
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, ClassVar

from ember.models.exceptions import ModelProviderError
from ember.models.schemas import ChatResponse, StreamChunk

Prompt = str | Sequence[Any]


class BaseProvider:
    """Base class of model providers.

    Subclasses implement :meth:`complete`; they may override
    :meth:`complete_async`, :meth:`stream` and :meth:`stream_async` for real
    async I/O and streaming. The API key comes from the constructor or else
    :meth:`_get_api_key_from_env`; a missing key raises
    :class:`ModelProviderError` naming the variable(s) in ``api_key_env``.
    """

    #: environment variables searched for the API key, in order
    api_key_env: ClassVar[tuple[str, ...]] = ()
    #: False for providers that work without a key (offline, local servers)
    requires_api_key: ClassVar[bool] = True
    #: True when calls never cost money (no pricing lookup, no warning)
    free: ClassVar[bool] = False

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key or self._get_api_key_from_env()
        if not self.api_key and self.requires_api_key:
            names = " or ".join(self.api_key_env) or "the provider's API key variable"
            raise ModelProviderError(
                f"{type(self).__name__} has no API key: set {names}",
                context={"reason": "missing_api_key", "env_vars": list(self.api_key_env)},
            )

    def _get_api_key_from_env(self) -> str | None:
        for name in self.api_key_env:
            value = os.environ.get(name)
            if value:
                return value
        return None

    # -- the provider contract --------------------------------------------------------------
    def complete(self, prompt: Prompt, model: str, **kwargs: Any) -> ChatResponse:
        """Run one completion of ``prompt`` on ``model`` (bare name)."""
        raise NotImplementedError(f"{type(self).__name__}.complete")

    async def complete_async(self, prompt: Prompt, model: str, **kwargs: Any) -> ChatResponse:
        """Async twin of :meth:`complete`; default runs it in a worker thread."""
        return await asyncio.to_thread(self.complete, prompt, model, **kwargs)

    def stream(self, prompt: Prompt, model: str, **kwargs: Any) -> Iterator[StreamChunk]:
        """Yield chunks; the last carries ``usage``. Default: one chunk from :meth:`complete`."""
        response = self.complete(prompt, model, **kwargs)
        yield StreamChunk(
            text=response.data, finish_reason=response.finish_reason or "stop",
            usage=response.usage,
        )

    async def stream_async(
        self, prompt: Prompt, model: str, **kwargs: Any
    ) -> AsyncIterator[StreamChunk]:
        """Async twin of :meth:`stream`."""
        response = await self.complete_async(prompt, model, **kwargs)
        yield StreamChunk(
            text=response.data, finish_reason=response.finish_reason or "stop",
            usage=response.usage,
        )

    async def embed_async(self, inputs: list[str], model: str, **params: Any) -> Any:
        """Embed ``inputs``; returns an :class:`~ember.models.schemas.EmbeddingResponse`.

        Raises :class:`~ember.models.params.UnsupportedParameterError` (``param="model"``)
        for providers without embeddings.
        """
        from ember.models.params import UnsupportedParameterError

        raise UnsupportedParameterError(getattr(self, "name", type(self).__name__), "model",
                                        "this provider has no embeddings API", model)

    def close(self) -> None:
        """Release pooled connections (sync side)."""

    async def aclose(self) -> None:
        """Release pooled connections (both sides)."""
        self.close()


ProviderFactory = Callable[[str | None], BaseProvider]

_providers: dict[str, ProviderFactory] = {}
_lock = threading.Lock()


def register_provider(name: str, cls: ProviderFactory) -> None:
    """Make ``name/<model>`` ids use ``cls`` (called as ``cls(api_key)``).

    The key passed is ``<NAME>_API_KEY`` from the environment, or None (the
    provider may then find its own key via ``_get_api_key_from_env``).
    Re-registering a name replaces it for registries created afterwards and
    for models not resolved yet.
    """
    if not name or "/" in name:
        raise ValueError(f"provider name must be non-empty without '/': {name!r}")
    with _lock:
        _providers[name.lower()] = cls


def unregister_provider(name: str) -> None:
    """Remove a provider registered with :func:`register_provider`."""
    with _lock:
        _providers.pop(name.lower(), None)


def get_provider_factory(name: str) -> ProviderFactory | None:
    """The factory registered for ``name``, loading built-ins on demand."""
    factory = _providers.get(name)
    if factory is None and name in _BUILTIN:
        module_name, cls_name = _BUILTIN[name]
        import importlib

        factory = getattr(importlib.import_module(module_name), cls_name)
        with _lock:
            factory = _providers.setdefault(name, factory)
    return factory


def provider_names() -> list[str]:
    """Every registered or built-in provider name."""
    return sorted(set(_providers) | set(_BUILTIN))


_BUILTIN: dict[str, tuple[str, str]] = {
    "openai": ("ember.models.providers.openai", "OpenAIProvider"),
    "anthropic": ("ember.models.providers.anthropic", "AnthropicProvider"),
    "google": ("ember.models.providers.google", "GoogleProvider"),
    "gemini": ("ember.models.providers.google", "GoogleProvider"),
    "offline": ("ember.models.providers.offline", "OfflineProvider"),
}
