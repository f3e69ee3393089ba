"""A Redis-backed route cache shared by every worker and host (``redis.asyncio``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ember.cache.base import RouteCache
from ember.exceptions import ConfigError

DEFAULT_URL = "redis://localhost:6379"


class RedisCache(RouteCache):
    """``RedisCache(url="redis://localhost:6379", ttl=30)``.

    ``url`` defaults to ``$EMBER_REDIS_URL`` or ``$REDIS_URL`` when set.  Keys live
    under ``prefix`` + a namespace generation number; :meth:`clear` bumps the
    generation (one ``INCR``), so no ``KEYS``/``SCAN`` is ever needed.  Operations
    time out after ``timeout`` seconds and then fail open.
    """

    backend = "RedisCache"

    def __init__(self, url: str | None = None, ttl: float | None = 30, *,
                 timeout: float = 0.25, prefix: str = "ember:cache:", **options: Any) -> None:
        super().__init__(ttl, prefix=prefix, **options)
        url = url or os.environ.get("EMBER_REDIS_URL") or os.environ.get("REDIS_URL") \
            or DEFAULT_URL
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"RedisCache url must start with redis://, rediss:// or unix://, "
                              f"got {url!r}")
        if timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {timeout!r}")
        self.url = url
        self.timeout = timeout
        self._client: Any = None
        self._generation: int | None = None
        self._pid = os.getpid()

    def _redis(self) -> Any:
        if self._client is None or self._pid != os.getpid():
            # NOTE: connections never cross a fork; each worker connects on its own.
            from ember.exceptions import require

            redis = require("redis.asyncio", "cache", "RedisCache")
            self._client = redis.from_url(self.url, socket_timeout=self.timeout,
                                          socket_connect_timeout=self.timeout)
            self._pid = os.getpid()
            self._generation = None
        return self._client

    async def _ns(self) -> str:
        if self._generation is None:
            value = await asyncio.wait_for(self._redis().get(self.prefix + "generation"),
                                           self.timeout)
            self._generation = int(value or 0)
        return f"{self.prefix}{self._generation}:"

    async def startup(self) -> None:
        """Connect and read the namespace generation (failures are logged, not raised)."""
        try:
            await asyncio.wait_for(self._redis().ping(), self.timeout)
            await self._ns()
        except Exception as exc:
            self._failed("connect", exc)

    async def shutdown(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:
                pass

    async def _get(self, key: str) -> bytes | None:
        ns = await self._ns()
        return await asyncio.wait_for(self._redis().get(ns + key), self.timeout)

    async def _set(self, key: str, value: bytes) -> None:
        ns = await self._ns()
        ttl = None if self.ttl is None else max(1, round(self.ttl))
        await asyncio.wait_for(self._redis().set(ns + key, value, ex=ttl), self.timeout)

    async def _delete(self, key: str) -> None:
        ns = await self._ns()
        await asyncio.wait_for(self._redis().delete(ns + key), self.timeout)

    async def _clear(self) -> None:
        self._generation = int(await asyncio.wait_for(
            self._redis().incr(self.prefix + "generation"), self.timeout))
