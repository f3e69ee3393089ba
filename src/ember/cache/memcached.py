"""A Memcached-backed route cache (``aiomcache``).

Memcached keys are at most 250 bytes of printable ASCII without spaces: every
key here is ``prefix`` + a SHA-256 hex digest, whatever the URL.  A lookup is
two round trips (the three version keys in one ``get_multi``, then the entry);
see ``ember.cache._remote`` for how versions make invalidation scan-free.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ember.cache._remote import RemoteCache
from ember.cache.keys import CacheKey
from ember.exceptions import ConfigError

#: Memcached's limits: key length, and the largest relative expiry (30 days)
MAX_KEY = 250
MAX_RELATIVE_TTL = 30 * 24 * 3600


class MemcachedCache(RemoteCache):
    """``MemcachedCache(host="localhost", port=11211, ttl=60)``.

    ``ttl`` is whole seconds (rounded up), at most 30 days; ``None`` keeps entries
    until evicted.  Values over Memcached's item size (1 MB by default) are not
    stored.  Each operation times out after ``timeout`` seconds and the request is
    served uncached.  Connections are made per worker on first use.
    """

    backend = "MemcachedCache"

    def __init__(self, host: str = "localhost", port: int = 11211, ttl: float | None = 60, *,
                 timeout: float = 0.25, pool_size: int = 4, prefix: str = "ember:",
                 max_item_size: int = 1024 * 1024 - 1024, **options: Any) -> None:
        super().__init__(ttl, prefix=prefix, timeout=timeout, **options)
        if not isinstance(host, str) or not host or any(c.isspace() for c in host):
            raise ConfigError(f"host must be a host name or address, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"port must be an int in 1-65535, got {port!r}")
        if ttl is not None and ttl > MAX_RELATIVE_TTL:
            raise ConfigError(f"Memcached ttl must be at most 30 days ({MAX_RELATIVE_TTL} s), "
                              f"got {ttl!r}")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigError(f"pool_size must be a positive int, got {pool_size!r}")
        self.host = host
        self.port = port
        self.pool_size = pool_size
        self.max_item_size = max_item_size

    def _connect(self) -> Any:
        from ember.exceptions import require

        aiomcache = require("aiomcache", "cache", "MemcachedCache")
        return aiomcache.Client(self.host, self.port, pool_size=self.pool_size)

    async def _close(self, client: Any) -> None:
        await client.close()

    async def _ping(self) -> None:
        await asyncio.wait_for(self.client().version(), self.timeout)

    @staticmethod
    def _k(key: str) -> bytes:
        raw = key.encode("ascii")
        if len(raw) > MAX_KEY:  # NOTE: cannot happen with a valid prefix; keep the guarantee
            raise ValueError("memcached key too long")
        return raw

    def storage_key(self, key: str, versions: tuple[str, str, str] = ("0", "0", "0")) -> bytes:
        """The Memcached key of an entry: always ASCII, no spaces, under 250 bytes."""
        return self._k(self.entry_key(versions, key))

    @staticmethod
    def _exptime(ttl: float | None) -> int:
        if ttl is None:
            return 0
        return min(MAX_RELATIVE_TTL, max(1, int(-(-ttl // 1))))

    async def _lookup(self, key: CacheKey) -> tuple[Any, bytes | None]:
        client = self.client()
        names = (self._k(self.gen_key()), self._k(self.path_version_key(key.path)),
                 self._k(self.query_version_key(key.path, key.query)))
        values = await asyncio.wait_for(client.multi_get(*names), self.timeout)
        versions = tuple((v or b"0").decode("ascii", "replace") for v in values)
        entry = self.storage_key(key.full, versions)  # type: ignore[arg-type]
        blob = await asyncio.wait_for(client.get(entry), self.timeout)
        return entry, blob

    async def _store(self, handle: Any, blob: bytes) -> None:
        if len(blob) > self.max_item_size:
            return  # NOTE: Memcached would refuse it; that is not an outage
        await asyncio.wait_for(
            self.client().set(handle, blob, exptime=self._exptime(self.ttl)), self.timeout)

    async def _bump(self, version_key: str) -> None:
        await asyncio.wait_for(
            self.client().set(self._k(version_key), self.new_token().encode(),
                              exptime=self._exptime(self.version_ttl())), self.timeout)

    async def _invalidate(self, path: str, query: str | None) -> None:
        await self._bump(self.path_version_key(path) if query is None
                         else self.query_version_key(path, query))

    async def _clear(self) -> None:
        await self._bump(self.gen_key())

    def __repr__(self) -> str:
        return f"MemcachedCache(host={self.host!r}, port={self.port!r}, ttl={self.ttl!r})"
