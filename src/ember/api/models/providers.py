"""Custom providers: subclass :class:`BaseProvider`, then :func:`register_provider`."""

from __future__ import annotations

from ember.models.providers import (
    BaseProvider,
    get_provider_factory,
    provider_names,
    register_provider,
    unregister_provider,
)
from ember.models.providers.compatible import OpenAICompatibleProvider, compatible_provider

__all__ = [
    "BaseProvider",
    "OpenAICompatibleProvider",
    "compatible_provider",
    "get_provider_factory",
    "provider_names",
    "register_provider",
    "unregister_provider",
]
