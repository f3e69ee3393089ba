"""Model-system errors (see :mod:`ember.models.exceptions` for the tree)."""

from __future__ import annotations

from ember.models.exceptions import ModelError, ModelProviderError, ProviderAPIError

__all__ = ["ModelError", "ModelProviderError", "ProviderAPIError"]
