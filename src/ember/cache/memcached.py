"""A Memcached-backed route cache (``aiomcache``)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

from ember.cache.base import RouteCache
from ember.exceptions import ConfigError

_MAX_KEY = 250


class MemcachedCache(RouteCache):
    """``MemcachedCache(host="localhost", port=11211, ttl=60)``.

    Memcached keys are at most 250 bytes without spaces or control characters:
    every key is hashed (SHA-256) under a namespace version, and :meth:`clear`
    bumps that version.  Operations time out after ``timeout`` seconds and fail open.
    """

    backend = "MemcachedCache"

    def __init__(self, host: str = "localhost", port: int = 11211, ttl: float | None = 60, *,
                 timeout: float = 0.25, pool_size: int = 4, prefix: str = "ember:",
                 **options: Any) -> None:
        super().__init__(ttl, prefix=prefix, **options)
        if not isinstance(host, str) or not host:
            raise ConfigError(f"host must be a non-empty string, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"port must be 1-65535, got {port!r}")
        if ttl is not None and ttl > 30 * 24 * 3600:
            raise ConfigError("Memcached ttl must be at most 30 days")
        self.host = host
        self.port = port
        self.timeout = timeout
        self.pool_size = pool_size
        self._client: Any = None
        self._version: int | None = None
        self._pid = os.getpid()

    def _mc(self) -> Any:
        if self._client is None or self._pid != os.getpid():
            from ember.exceptions import require

            aiomcache = require("aiomcache", "cache", "MemcachedCache")
            self._client = aiomcache.Client(self.host, self.port, pool_size=self.pool_size)
            self._pid = os.getpid()
            self._version = None
        return self._client

    def storage_key(self, key: str, version: int) -> bytes:
        """A valid Memcached key: hashed, namespaced, always < 250 bytes."""
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        out = f"{self.prefix}{version}:{digest}".encode("ascii", "replace")
        return out[:_MAX_KEY]

    async def _ns_version(self) -> int:
        if self._version is None:
            raw = await asyncio.wait_for(self._mc().get(self._version_key()), self.timeout)
            self._version = int(raw or 0)
        return self._version

    def _version_key(self) -> bytes:
        return f"{self.prefix}version".encode()[:_MAX_KEY]

    async def startup(self) -> None:
        """Open the pool and read the namespace version (failures logged, not raised)."""
        try:
            await self._ns_version()
        except Exception as exc:
            self._failed("connect", exc)

    async def shutdown(self) -> None:
        """Close the pool."""
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.close()
            except Exception:
                pass

    async def _get(self, key: str) -> bytes | None:
        k = self.storage_key(key, await self._ns_version())
        return await asyncio.wait_for(self._mc().get(k), self.timeout)

    async def _set(self, key: str, value: bytes) -> None:
        k = self.storage_key(key, await self._ns_version())
        exptime = 0 if self.ttl is None else max(1, round(self.ttl))
        await asyncio.wait_for(self._mc().set(k, value, exptime=exptime), self.timeout)

    async def _delete(self, key: str) -> None:
        k = self.storage_key(key, await self._ns_version())
        await asyncio.wait_for(self._mc().delete(k), self.timeout)

    async def _clear(self) -> None:
        version = await self._ns_version() + 1
        await asyncio.wait_for(self._mc().set(self._version_key(), str(version).encode()),
                               self.timeout)
        self._version = version
