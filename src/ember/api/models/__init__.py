"""``ember.api.models``: a module you can call.

    from ember.api import models
    response = models("gpt-4", "What is the capital of France?")
    analyzer = models.instance("claude-3-opus", temperature=0.2)
    for chunk in models.stream("gpt-4", "Write a long story"): ...
    response = await models.async_("gpt-4", "Hi")
    async for chunk in models.astream("gpt-4", "Hi"): ...

Submodules: :mod:`ember.api.models.providers`, :mod:`ember.api.models.schemas`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from ember.models import (
    AsyncModelStream,
    BaseProvider,
    ChatResponse,
    ModelBinding,
    ModelError,
    ModelProviderError,
    ModelRegistry,
    ModelStream,
    ProviderAPIError,
    StreamChunk,
    UsageStats,
    UsageSummary,
    acall,
    aembed,
    astream,
    async_,
    default_registry,
    get_usage_summary,
    instance,
    register_provider,
    stream,
    stream_async,
)
from ember.models import models as _call

__all__ = [
    "AsyncModelStream",
    "BaseProvider",
    "ChatResponse",
    "ModelBinding",
    "ModelError",
    "ModelProviderError",
    "ModelRegistry",
    "ModelStream",
    "ProviderAPIError",
    "StreamChunk",
    "UsageStats",
    "UsageSummary",
    "acall",
    "aembed",
    "astream",
    "async_",
    "default_registry",
    "get_usage_summary",
    "instance",
    "register_provider",
    "stream",
    "stream_async",
]


class _CallableModule(types.ModuleType):
    """This module's class: calling it is ``ember.models.models(...)``."""

    def __call__(self, model: str, prompt: Any, **params: Any) -> ChatResponse:
        return _call(model, prompt, **params)


sys.modules[__name__].__class__ = _CallableModule
