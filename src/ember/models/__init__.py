"""Ember's model system: one call to OpenAI, Anthropic, Google, any
OpenAI-compatible server, or the offline provider.

    from ember.api import models
    models("gpt-4", "What is the capital of France?").text

This package imports no HTTP library; httpx loads on the first provider call.
See ``docs/models.md``.
"""

from __future__ import annotations

from ember.models.api import (
    ModelBinding,
    acall,
    aembed,
    astream,
    async_,
    default_registry,
    get_usage_summary,
    instance,
    models,
    stream,
    stream_async,
)
from ember.models.exceptions import ModelError, ModelProviderError, ProviderAPIError
from ember.models.pricing import ModelPrice, Pricing, PricingWarning
from ember.models.providers.base import BaseProvider, register_provider, unregister_provider
from ember.models.registry import ModelRegistry
from ember.models.resolution import resolve_model_id
from ember.models.schemas import (
    ChatResponse,
    EmbeddingResponse,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    UsageStats,
    UsageSummary,
)
from ember.models.streams import AsyncModelStream, ModelStream

__all__ = [
    "AsyncModelStream",
    "BaseProvider",
    "ChatResponse",
    "EmbeddingResponse",
    "ModelBinding",
    "ModelError",
    "ModelPrice",
    "ModelProviderError",
    "ModelRegistry",
    "ModelStream",
    "Pricing",
    "PricingWarning",
    "ProviderAPIError",
    "StreamChunk",
    "ToolCall",
    "ToolCallDelta",
    "UsageStats",
    "UsageSummary",
    "acall",
    "aembed",
    "astream",
    "async_",
    "default_registry",
    "get_usage_summary",
    "instance",
    "models",
    "register_provider",
    "resolve_model_id",
    "stream",
    "stream_async",
    "unregister_provider",
]
