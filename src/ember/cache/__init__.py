"""Route response caches: ``@app.get(path, cache=StaticCache() | RedisCache() | MemcachedCache())``.

Nothing here imports ``redis`` or ``aiomcache`` until a cache first connects.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RouteCache": "ember.cache.base",
    "CacheKey": "ember.cache.keys",
    "StaticCache": "ember.cache.static",
    "RedisCache": "ember.cache.redis_cache",
    "MemcachedCache": "ember.cache.memcached",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ember.cache' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
