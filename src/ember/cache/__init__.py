"""Route response caches: ``@app.get(path, cache=StaticCache() | RedisCache() | MemcachedCache())``.

Nothing here imports ``redis`` or ``aiomcache`` until a cache first connects.
"""

from __future__ import annotations

from ember._lazy import lazy_exports

_EXPORTS = {
    "RouteCache": "ember.cache.base",
    "CacheKey": "ember.cache.keys",
    "StaticCache": "ember.cache.static",
    "RedisCache": "ember.cache.redis_cache",
    "MemcachedCache": "ember.cache.memcached",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("ember.cache", _EXPORTS, globals())
