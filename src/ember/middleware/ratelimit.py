"""Token-bucket rate limiting: per process, or global across workers and hosts.

``TokenBucket(rate, capacity)`` refills ``rate`` tokens per second up to
``capacity``, one bucket per key, in this process.  ``GlobalTokenBucket(redis_url,
rate, capacity)`` keeps the buckets in Redis and takes tokens atomically with a
Lua script (``EVALSHA``, loaded once), so every worker and host shares them; if
Redis is down it fails open (logged once) rather than refusing traffic.
``RateLimitMiddleware(bucket, key="ip" | "api_key" | callable)`` answers 429 with
``Retry-After`` and sets ``RateLimit-Limit``/``-Remaining``/``-Reset`` on every
response.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ember.exceptions import ConfigError
from ember.responses import JSONResponse, Response

logger = logging.getLogger("ember.ratelimit")


def _check_rate(rate: Any, capacity: Any) -> None:
    for name, value in (("rate", rate), ("capacity", capacity)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or \
                not math.isfinite(value):
            raise ConfigError(f"{name} must be a positive number, got {value!r}")


class TokenBucket:
    """In-process token buckets keyed by client (bounded LRU of keys)."""

    def __init__(self, rate: float, capacity: float, max_keys: int = 100_000) -> None:
        _check_rate(rate, capacity)
        self.rate = float(rate)
        self.capacity = float(capacity)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def take(self, key: str, cost: float = 1.0) -> tuple[bool, float, float]:
        """``(allowed, remaining, seconds until a token is available)``."""
        return self.take_now(key, cost)

    def take_now(self, key: str, cost: float = 1.0) -> tuple[bool, float, float]:
        """Synchronous :meth:`take`."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= cost:
            tokens -= cost
            allowed = True
            wait = 0.0
        else:
            allowed = False
            wait = (cost - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed, tokens, wait


_LUA = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil then tokens = capacity; ts = now end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', key, math.ceil(capacity / rate) + 1)
return {allowed, tostring(tokens), tostring(wait)}
"""


class GlobalTokenBucket:
    """Token buckets in Redis, atomic across processes and hosts."""

    def __init__(self, redis_url: str = "redis://localhost:6379", rate: float = 10,
                 capacity: float = 10, prefix: str = "ember:rl:", timeout: float = 0.5) -> None:
        _check_rate(rate, capacity)
        if not isinstance(redis_url, str) or not redis_url.startswith(("redis://", "rediss://",
                                                                       "unix://")):
            raise ConfigError(f"redis_url must be a redis:// URL, got {redis_url!r}")
        self.redis_url = redis_url
        self.rate = float(rate)
        self.capacity = float(capacity)
        self.prefix = prefix
        self.timeout = timeout
        self._client: Any = None
        self._sha: str | None = None
        self._down_logged = False

    def _redis(self) -> Any:
        if self._client is None:
            from ember.exceptions import require

            redis = require("redis.asyncio", "cache", "GlobalTokenBucket")
            self._client = redis.from_url(self.redis_url, socket_timeout=self.timeout,
                                          socket_connect_timeout=self.timeout)
        return self._client

    async def take(self, key: str, cost: float = 1.0) -> tuple[bool, float, float]:
        """Atomically take ``cost`` tokens; fails open when Redis is unreachable."""
        try:
            client = self._redis()
            args = (self.rate, self.capacity, cost)
            if self._sha is None:
                self._sha = await asyncio.wait_for(client.script_load(_LUA), self.timeout)
            try:
                result = await asyncio.wait_for(
                    client.evalsha(self._sha, 1, self.prefix + key, *args), self.timeout)
            except Exception as exc:
                if "NOSCRIPT" not in str(exc):
                    raise
                self._sha = await client.script_load(_LUA)
                result = await client.evalsha(self._sha, 1, self.prefix + key, *args)
        except Exception as exc:
            if not self._down_logged:
                self._down_logged = True
                logger.warning("GlobalTokenBucket: Redis at %s unavailable (%s); not limiting",
                               self.redis_url, exc)
            return True, self.capacity, 0.0
        self._down_logged = False
        allowed, tokens, wait = result
        return bool(int(allowed)), float(tokens), float(wait)

    async def close(self) -> None:
        """Close the Redis connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _key_by_ip(request: Any) -> str:
    client = request.client
    return "ip:" + (client.host if client else "unknown")


def _key_by_api_key(header: str) -> Callable[[Any], str]:
    def key(request: Any) -> str:
        value = request.headers.get(header)
        if not value:
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                value = auth[7:].strip()
        if not value:
            return _key_by_ip(request)
        return "key:" + hashlib.sha256(value.encode()).hexdigest()[:24]
    return key


class RateLimitMiddleware:
    """429 with ``Retry-After`` when a caller's bucket is empty."""

    def __init__(self, bucket: TokenBucket | GlobalTokenBucket, key: str | Callable[[Any], Any]
                 = "ip", cost: float = 1.0, api_key_header: str = "x-api-key",
                 exclude_paths: tuple[str, ...] = ()) -> None:
        if not hasattr(bucket, "take"):
            raise ConfigError("bucket must be a TokenBucket or GlobalTokenBucket")
        if key == "ip":
            self.key_fn: Callable[[Any], Any] = _key_by_ip
        elif key == "api_key":
            self.key_fn = _key_by_api_key(api_key_header.lower())
        elif callable(key):
            self.key_fn = key
        else:
            raise ConfigError(f"key must be 'ip', 'api_key' or a function, got {key!r}")
        if cost <= 0:
            raise ConfigError(f"cost must be positive, got {cost!r}")
        self.bucket = bucket
        self.cost = cost
        self.exclude_paths = frozenset(exclude_paths)

    async def __call__(self, request: Any, call_next: Any) -> Response:
        if request.path in self.exclude_paths:
            return await call_next(request)
        key = self.key_fn(request)
        if inspect.isawaitable(key):
            key = await key
        allowed, remaining, wait = await self.bucket.take(str(key), self.cost)
        limit = int(self.bucket.capacity)
        reset = math.ceil(wait if not allowed else
                          (self.bucket.capacity - remaining) / self.bucket.rate)
        headers = {"ratelimit-limit": str(limit), "ratelimit-remaining": str(int(remaining)),
                   "ratelimit-reset": str(max(0, reset))}
        if not allowed:
            retry = max(1, math.ceil(wait))
            return JSONResponse({"detail": f"rate limit exceeded; retry in {retry} s"}, 429,
                                headers={**headers, "retry-after": str(retry)})
        response = await call_next(request)
        for name, value in headers.items():
            response.headers[name] = value
        return response
