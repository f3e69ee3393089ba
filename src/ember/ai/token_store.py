"""``TokenLimits(tokens_per_minute=..., store="redis://...")``: one budget for every worker.

The in-process :class:`ember.ai.routes.TokenBudget` counts per worker (4 workers: 4x
the limit).  :class:`RedisTokenBudget` keeps the same one-minute window per caller in
Redis: the check and the charge are one Lua script (no two workers can both take the
last tokens), and the charges after the call (completion tokens, refunds) are sent
without blocking the response.  When Redis is down the route serves and logs once
(fail open: a rate limit protects capacity; the gateway's budgets fail closed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ember._redact import redact_url

logger = logging.getLogger("ember.ai")

_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local need, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if used + need > limit then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then ttl = 60000 end
  return {0, ttl, limit - used}
end
local now = redis.call('INCRBY', KEYS[1], need)
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], 60000) end
return {1, 0, limit - now}
"""

_CHARGE = """
local now = redis.call('INCRBY', KEYS[1], tonumber(ARGV[1]))
if now < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') end
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], 60000) end
return 0
"""


class RedisTokenBudget:
    """Tokens per minute per caller key, shared through Redis."""

    def __init__(self, tokens_per_minute: int, url: str, prefix: str = "ember:tpm:") -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"TokenLimits.store must be a redis:// URL, got "
                             f"{redact_url(str(url))!r}")
        self.limit = tokens_per_minute
        self.url = url
        self.prefix = prefix
        self._scripts: tuple[Any, Any] | None = None
        self._client: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warned = False
        self._bound: set[int] = set()

    def bind(self, app: Any) -> None:
        """Close the connections when ``app`` shuts down (once per app)."""
        if app is not None and id(app) not in self._bound and hasattr(app, "on_shutdown"):
            self._bound.add(id(app))
            app.on_shutdown(self.aclose)

    async def aclose(self) -> None:
        """Wait for pending charges, then close the connection pool."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        client, self._client, self._scripts = self._client, None, None
        if client is not None:
            await client.aclose()

    def _redis(self) -> tuple[Any, Any]:
        if self._scripts is None:
            try:
                import redis.asyncio as aioredis
            except ImportError:
                from ember.exceptions import MissingDependency

                raise MissingDependency("redis", "cache", "Shared token limits") from None
            # NOTE: a blocking pool: a burst beyond the pool waits for a connection
            # instead of failing with MaxConnectionsError (see ember.gateway._redis)
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=64, timeout=3.0, socket_timeout=3.0,
                socket_connect_timeout=1.0)
            self._client = client = aioredis.Redis.from_pool(pool)
            self._scripts = (client.register_script(_TAKE), client.register_script(_CHARGE))
        return self._scripts

    def _down(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("token limits: Redis at %s unavailable (%s); serving without "
                           "them until it is back", redact_url(self.url), type(exc).__name__)

    async def take(self, key: str, tokens: int) -> tuple[float | None, int]:
        """Take ``tokens`` for ``key`` now: ``(None, left)``, or ``(seconds to wait,
        left)`` without taking anything."""
        try:
            ok, ttl, left = await self._redis()[0](keys=[self.prefix + key],
                                                   args=[tokens, self.limit])
        except Exception as exc:
            self._down(exc)
            return None, self.limit
        self._warned = False
        return (None if ok else int(ttl) / 1000.0), max(0, int(left))

    def charge(self, key: str, tokens: int) -> None:
        """Add ``tokens`` (negative: refund) in the background."""
        if not tokens:
            return

        async def send() -> None:
            try:
                await self._redis()[1](keys=[self.prefix + key], args=[tokens])
            except Exception as exc:
                self._down(exc)

        task = asyncio.get_running_loop().create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
