"""A Redis-backed route cache shared by every worker and host (``redis.asyncio``).

One round trip per lookup: a Lua script reads the three version keys (see
``ember.cache._remote``), derives the entry key and reads it.  The script uses
keys it computes itself, so it needs a single Redis (or a primary with
replicas), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any
from urllib.parse import urlsplit

from ember._redact import redact, redact_url
from ember.cache._remote import RemoteCache
from ember.cache.keys import CacheKey
from ember.exceptions import ConfigError

DEFAULT_URL = "redis://localhost:6379"

_LOOKUP = """
local v = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])
local k = ARGV[1] .. 'e:' .. redis.sha1hex((v[1] or '0') .. '\\0' .. (v[2] or '0') .. '\\0'
    .. (v[3] or '0') .. '\\0' .. ARGV[2])
return {k, redis.call('GET', k)}
"""


def check_redis_url(url: Any, what: str = "url") -> str:
    """``url`` if it is a usable Redis URL, else a :class:`ConfigError` saying why.

    The message shows the URL with its password masked (``ember._redact``).
    """
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{what} must be a redis:// URL string, got {type(url).__name__}")
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"invalid Redis {what} {shown!r}: {redact(exc, [url])}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"Redis {what} must start with redis://, rediss:// or unix://, "
                          f"got {shown!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"Redis {what} {shown!r} has no host")
    if parts.scheme == "unix" and not parts.path:
        raise ConfigError(f"Redis {what} {shown!r} has no socket path")
    if port == 0:
        raise ConfigError(f"Redis {what} {shown!r} has port 0")
    db = parts.path.strip("/") if parts.scheme != "unix" else ""
    if db and not db.isdigit():
        raise ConfigError(f"Redis {what} {shown!r}: the path must be a database number")
    return url


#: Connections per worker and client; more concurrent calls wait for a free one.
MAX_CONNECTIONS = 64


def redis_client(url: str, timeout: float, feature: str) -> Any:
    """A ``redis.asyncio`` client that fails fast: short timeouts and no retries.

    Its pool blocks: ``redis.asyncio.from_url``'s default pool holds at most 100
    connections and *raises* for the 101st concurrent call, so a burst of requests
    would look like an outage (sessions 503, caches and limits failing open) while
    Redis is fine.  Here at most :data:`MAX_CONNECTIONS` per worker are opened and a
    call that finds them busy waits for one, within ``timeout``.
    """
    from ember.exceptions import require

    redis = require("redis.asyncio", "cache", feature)
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=timeout, socket_timeout=timeout,
        socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0), health_check_interval=0)
    return redis.Redis.from_pool(pool)


class RedisCache(RemoteCache):
    """``RedisCache(url="redis://localhost:6379", ttl=30)``: one cache for every worker.

    ``url`` defaults to ``$EMBER_REDIS_URL``, then ``$REDIS_URL``, then
    ``redis://localhost:6379``.  ``ttl`` is in seconds (fractions allowed; ``None``
    keeps entries until :meth:`clear`).  Each operation times out after ``timeout``
    seconds; then the request is served uncached.  Connections are made in each
    worker on first use (or at server start), never at construction.
    """

    backend = "RedisCache"

    def __init__(self, url: str | None = None, ttl: float | None = 30, *,
                 timeout: float = 0.25, prefix: str = "ember:cache:", **options: Any) -> None:
        super().__init__(ttl, prefix=prefix, timeout=timeout, **options)
        if url is None:
            url = os.environ.get("EMBER_REDIS_URL") or os.environ.get("REDIS_URL") or DEFAULT_URL
        self.url = check_redis_url(url)
        self._scripts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def _connect(self) -> Any:
        return redis_client(self.url, self.timeout, "RedisCache")

    async def _close(self, client: Any) -> None:
        await client.aclose()

    async def _ping(self) -> None:
        await asyncio.wait_for(self.client().ping(), self.timeout)

    def _lookup_script(self) -> Any:
        client = self.client()
        script = self._scripts.get(client)
        if script is None:
            # NOTE: redis-py's Script runs EVALSHA and falls back to loading on NOSCRIPT.
            script = self._scripts[client] = client.register_script(_LOOKUP)
        return script

    async def _lookup(self, key: CacheKey) -> tuple[Any, bytes | None]:
        keys = [self.gen_key(), self.path_version_key(key.path),
                self.query_version_key(key.path, key.query)]
        entry, blob = await asyncio.wait_for(
            self._lookup_script()(keys=keys, args=[self.prefix, key.full]), self.timeout)
        return entry, blob

    async def _store(self, handle: Any, blob: bytes) -> None:
        px = None if self.ttl is None else max(1, int(self.ttl * 1000))
        await asyncio.wait_for(self.client().set(handle, blob, px=px), self.timeout)

    async def _bump(self, version_key: str) -> None:
        ttl = self.version_ttl()
        px = None if ttl is None else int(ttl * 1000)
        await asyncio.wait_for(self.client().set(version_key, self.new_token(), px=px),
                               self.timeout)

    async def _invalidate(self, path: str, query: str | None) -> None:
        await self._bump(self.path_version_key(path) if query is None
                         else self.query_version_key(path, query))

    async def _clear(self) -> None:
        await self._bump(self.gen_key())

    def __repr__(self) -> str:
        return f"RedisCache(url={redact_url(self.url)!r}, ttl={self.ttl!r})"
