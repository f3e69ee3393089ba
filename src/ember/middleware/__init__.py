"""Built-in middleware: CORS, bearer and API-key authentication, rate limiting."""

from __future__ import annotations

from ember._lazy import lazy_exports

_EXPORTS = {
    "CORSMiddleware": "ember.middleware.cors",
    "BearerAuthMiddleware": "ember.middleware.auth",
    "APIKeyMiddleware": "ember.middleware.auth",
    "RateLimitMiddleware": "ember.middleware.ratelimit",
    "TokenBucket": "ember.middleware.ratelimit",
    "GlobalTokenBucket": "ember.middleware.ratelimit",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("ember.middleware", _EXPORTS, globals())
