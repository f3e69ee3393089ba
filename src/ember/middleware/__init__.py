"""Built-in middleware: CORS, bearer and API-key authentication, rate limiting."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CORSMiddleware": "ember.middleware.cors",
    "BearerAuthMiddleware": "ember.middleware.auth",
    "APIKeyMiddleware": "ember.middleware.auth",
    "RateLimitMiddleware": "ember.middleware.ratelimit",
    "TokenBucket": "ember.middleware.ratelimit",
    "GlobalTokenBucket": "ember.middleware.ratelimit",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ember.middleware' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
