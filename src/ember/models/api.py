"""The call surface: ``models(model, prompt, **params)`` and friends.

Every function uses one process-wide :class:`ModelRegistry` (created on first
use, see :func:`default_registry`), so connection pools and usage totals are
shared by all callers.

    models("gpt-4", "Hi")                     # ChatResponse: .text, .usage
    models.instance("claude-3-opus", temperature=0.2)("Hi", max_tokens=10)
    for chunk in models.stream("gpt-4", "Tell a story"): ...
    await models.async_("gpt-4", "Hi")        # alias: models.acall
    async for chunk in models.astream("gpt-4", "Tell a story"): ...
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from ember.models.registry import ModelRegistry
from ember.models.resolution import resolve_model_id
from ember.models.schemas import ChatResponse, UsageSummary
from ember.models.streams import AsyncModelStream, ModelStream

_default: ModelRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> ModelRegistry:
    """The process-wide registry behind :func:`models` (closed at exit)."""
    global _default
    registry = _default
    if registry is None:
        with _default_lock:
            registry = _default
            if registry is None:
                registry = _default = ModelRegistry()
                atexit.register(registry.close)
    return registry


def models(model: str, prompt: Any, **params: Any) -> ChatResponse:
    """Call ``model`` with ``prompt`` (a string or a list of chat messages).

    ``params`` go to the provider (``temperature``, ``max_tokens``, ``tools``,
    ``system``...), except ``timeout`` (seconds) and ``max_retries``.
    """
    return default_registry().invoke_model(model, prompt, **params)


async def async_(model: str, prompt: Any, **params: Any) -> ChatResponse:
    """Async twin of :func:`models`."""
    return await default_registry().invoke_model_async(model, prompt, **params)


acall = async_


def stream(model: str, prompt: Any, **params: Any) -> ModelStream:
    """Stream ``model``'s answer: iterate for chunks with ``.text``; ``.usage`` at the end."""
    return default_registry().stream_model(model, prompt, **params)


def astream(model: str, prompt: Any, **params: Any) -> AsyncModelStream:
    """Async twin of :func:`stream`: ``async for chunk in models.astream(...)``."""
    return default_registry().stream_model_async(model, prompt, **params)


stream_async = astream


async def aembed(model: str, inputs: str | list[str], **params: Any) -> Any:
    """Embed a text or a list of texts: an EmbeddingResponse with ``.vectors`` and ``.usage``."""
    texts = [inputs] if isinstance(inputs, str) else list(inputs)
    return await default_registry().embed_async(model, texts, **params)


def get_usage_summary(model: str) -> UsageSummary | None:
    """Usage of ``model`` through the default registry."""
    return default_registry().get_usage_summary(model)


class ModelBinding:
    """A model with preset parameters; call it like :func:`models` minus the model.

    Binding checks the model id's shape but needs no key and no network;
    per-call keyword arguments override the defaults.
    """

    __slots__ = ("defaults", "model", "registry")

    def __init__(self, model: str, registry: ModelRegistry | None = None,
                 **defaults: Any) -> None:
        resolve_model_id(model)  # unknown ids fail here, keys are checked on first call
        self.model = model
        self.defaults = defaults
        self.registry = registry

    def _params(self, overrides: dict[str, Any]) -> dict[str, Any]:
        return {**self.defaults, **overrides} if overrides else dict(self.defaults)

    def _registry(self) -> ModelRegistry:
        return self.registry or default_registry()

    def __call__(self, prompt: Any, **overrides: Any) -> ChatResponse:
        return self._registry().invoke_model(self.model, prompt, **self._params(overrides))

    async def async_(self, prompt: Any, **overrides: Any) -> ChatResponse:
        """Async call with the preset parameters."""
        return await self._registry().invoke_model_async(
            self.model, prompt, **self._params(overrides))

    acall = async_

    def stream(self, prompt: Any, **overrides: Any) -> ModelStream:
        """Stream with the preset parameters."""
        return self._registry().stream_model(self.model, prompt, **self._params(overrides))

    def astream(self, prompt: Any, **overrides: Any) -> AsyncModelStream:
        """Async stream with the preset parameters."""
        return self._registry().stream_model_async(self.model, prompt,
                                                   **self._params(overrides))

    def __repr__(self) -> str:
        return f"ModelBinding({self.model!r}, **{self.defaults!r})"


def instance(model: str, **defaults: Any) -> ModelBinding:
    """Bind ``model`` with default parameters (no network, no key needed yet)."""
    return ModelBinding(model, **defaults)
