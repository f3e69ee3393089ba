"""Model providers: :class:`BaseProvider`, :func:`register_provider` and the built-ins.

Built-ins load on first use: ``openai``, ``anthropic``, ``google`` (alias
``gemini``), ``offline``, and OpenAI-compatible servers by ``<NAME>_BASE_URL``.
"""

from __future__ import annotations

from typing import Any

from ember.models.providers.base import (
    BaseProvider,
    get_provider_factory,
    provider_names,
    register_provider,
    unregister_provider,
)

__all__ = [
    "AnthropicProvider",
    "BaseProvider",
    "GoogleProvider",
    "OfflineProvider",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "compatible_provider",
    "get_provider_factory",
    "provider_names",
    "register_provider",
    "unregister_provider",
]

_LAZY = {
    "OpenAIProvider": "ember.models.providers.openai",
    "AnthropicProvider": "ember.models.providers.anthropic",
    "GoogleProvider": "ember.models.providers.google",
    "OfflineProvider": "ember.models.providers.offline",
    "OpenAICompatibleProvider": "ember.models.providers.compatible",
    "compatible_provider": "ember.models.providers.compatible",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
