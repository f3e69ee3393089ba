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
import os
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from ember._redact import redact, redact_url
from ember.exceptions import ConfigError
from ember.middleware.auth import _excluder
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
    """Token buckets in Redis, atomic across workers and hosts.

    One Lua script (``EVALSHA``; loaded again after a ``NOSCRIPT``, e.g. when Redis
    restarted) refills and takes in a single step, with Redis's clock, so every
    worker sees the same bucket.  If Redis is down or slower than ``timeout``, the
    request is allowed (fail open), the outage is logged once on ``ember.ratelimit``,
    and Redis is not tried again for ``retry_interval`` seconds.
    """

    def __init__(self, redis_url: str = "redis://localhost:6379", rate: float = 10,
                 capacity: float = 10, *, prefix: str = "ember:rl:", timeout: float = 0.25,
                 retry_interval: float = 2.0) -> None:
        from ember.cache.redis_cache import check_redis_url

        _check_rate(rate, capacity)
        self.redis_url = check_redis_url(redis_url, "redis_url")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or \
                not 0 < timeout <= 60:
            raise ConfigError(f"timeout must be a number of seconds in (0, 60], got {timeout!r}")
        self.rate = float(rate)
        self.capacity = float(capacity)
        self.prefix = prefix
        self.timeout = float(timeout)
        self.retry_interval = float(retry_interval)
        self._clients: weakref.WeakKeyDictionary[Any, tuple[int, Any]] = \
            weakref.WeakKeyDictionary()
        self._sha: str | None = None
        self._down = False
        self._skip_until = 0.0

    def _redis(self) -> Any:
        # NOTE: one client per event loop and process: never a parent's sockets after fork
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None or entry[0] != os.getpid():
            from ember.cache.redis_cache import redis_client

            entry = (os.getpid(), redis_client(self.redis_url, self.timeout, "GlobalTokenBucket"))
            self._clients[loop] = entry
        return entry[1]

    async def _evalsha(self, key: str, cost: float) -> Any:
        client = self._redis()
        args = (self.rate, self.capacity, cost)
        if self._sha is not None:
            from redis.exceptions import NoScriptError

            try:
                return await client.evalsha(self._sha, 1, key, *args)
            except NoScriptError:
                pass  # NOTE: Redis restarted or SCRIPT FLUSH: load it again
        self._sha = await client.script_load(_LUA)
        return await client.evalsha(self._sha, 1, key, *args)

    async def take(self, key: str, cost: float = 1.0) -> tuple[bool, float, float]:
        """Atomically take ``cost`` tokens: ``(allowed, remaining, seconds to wait)``."""
        if self._down and time.monotonic() < self._skip_until:
            return True, self.capacity, 0.0
        try:
            result = await asyncio.wait_for(self._evalsha(self.prefix + key, cost),
                                            self.timeout)
        except Exception as exc:
            self._skip_until = time.monotonic() + self.retry_interval
            if not self._down:
                self._down = True
                logger.warning("GlobalTokenBucket: Redis at %s unavailable (%s: %s); "
                               "not limiting until it is back", redact_url(self.redis_url),
                               type(exc).__name__, redact(exc or "timed out"))
            return True, self.capacity, 0.0
        if self._down:
            self._down = False
            logger.warning("GlobalTokenBucket: Redis at %s is back; limiting again",
                           redact_url(self.redis_url))
        allowed, tokens, wait = result
        return bool(int(allowed)), float(tokens), float(wait)

    async def close(self) -> None:
        """Close this loop's Redis connections (idempotent)."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None and entry[0] == os.getpid():
            try:
                await asyncio.wait_for(entry[1].aclose(), self.timeout)
            except Exception:  # shutting down: Redis may already be gone
                logger.debug("GlobalTokenBucket: error while closing Redis", exc_info=True)

    shutdown = close


def _key_by_ip(request: Any) -> str:
    client = request.client
    return "ip:" + (client.host if client else "unknown")


def _presented_key(request: Any, header: str) -> str | None:
    value = request.headers.get(header)
    if not value:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            value = auth[7:].strip()
    return value or None


class _KnownKeys:
    """Decides whether a presented API key is a real one (see RateLimitMiddleware).

    From, in order: ``api_keys=`` (compared in constant time), ``validator=`` (sync or
    async, only ``True`` counts), or the first :class:`~ember.middleware.auth.APIKeyMiddleware`
    on the request's app.  With none of them every key is unknown (and a warning is
    logged once): guessing keys must never buy fresh buckets.
    """

    def __init__(self, api_keys: Sequence[str] | None, validator: Callable[[str], Any] | None):
        from ember.middleware.auth import APIKeyMiddleware

        if api_keys is not None and validator is not None:
            raise ConfigError("give api_keys= or validator=, not both")
        if validator is not None and not callable(validator):
            raise ConfigError(f"validator must be a function of the key, got {validator!r}")
        self._fixed = APIKeyMiddleware(api_keys) if api_keys is not None else None
        self._validator = validator
        self._warned = False

    async def known(self, request: Any, key: str) -> bool:
        if self._fixed is not None:
            return self._fixed.valid(key)
        if self._validator is not None:
            try:
                result = self._validator(key)
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                logger.exception("rate limit validator raised; treating the key as unknown")
                return False
            return result is True
        from ember.middleware.auth import APIKeyMiddleware

        for mw in getattr(getattr(request, "app", None), "middleware", ()):
            if isinstance(mw, APIKeyMiddleware):
                return mw.valid(key)
        if not self._warned:
            self._warned = True
            logger.warning("RateLimitMiddleware(key='api_key') cannot tell real keys from "
                           "guesses (no APIKeyMiddleware on the app, no api_keys= or "
                           "validator=): every request is limited by client IP")
        return False


def _key_by_api_key(header: str, keys: _KnownKeys) -> Callable[[Any], Any]:
    async def key(request: Any) -> str:
        value = _presented_key(request, header)
        # NOTE: unknown keys share the client's IP bucket, so guessing keys is limited
        if value is None or not await keys.known(request, value):
            return _key_by_ip(request)
        return "key:" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return key


class RateLimitMiddleware:
    """429 with ``Retry-After`` when a caller's bucket is empty.

    ``key`` picks the bucket: ``"ip"`` (the client address, proxy-aware per the app's
    trusted proxies), ``"api_key"`` (a hash of ``api_key_header`` or of a bearer
    token when that key is *known*, else the client IP) or a function of the request
    returning a string (sync or async; ``None`` exempts the request).  A key is known
    when it is in ``api_keys=``, when ``validator(key)`` returns True, or — with
    neither — when the app's :class:`~ember.middleware.auth.APIKeyMiddleware` accepts
    it; so a client trying random keys shares its IP's bucket instead of getting a
    fresh one per guess.  Every response carries
    ``RateLimit-Limit`` (the capacity), ``RateLimit-Remaining`` and
    ``RateLimit-Reset`` (seconds until the bucket is full again, or until the
    request could succeed when refused).
    """

    def __init__(self, bucket: TokenBucket | GlobalTokenBucket, key: str | Callable[[Any], Any]
                 = "ip", cost: float = 1.0, api_key_header: str = "x-api-key",
                 exclude_paths: Sequence[str] = (), *, api_keys: Sequence[str] | None = None,
                 validator: Callable[[str], Any] | None = None) -> None:
        if not hasattr(bucket, "take"):
            raise ConfigError("bucket must be a TokenBucket or GlobalTokenBucket")
        if key == "ip":
            self.key_fn: Callable[[Any], Any] = _key_by_ip
        elif key == "api_key":
            self.key_fn = _key_by_api_key(api_key_header.lower(), _KnownKeys(api_keys, validator))
        elif callable(key):
            self.key_fn = key
        else:
            raise ConfigError(f"key must be 'ip', 'api_key' or a function, got {key!r}")
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not \
                0 < cost <= bucket.capacity:
            raise ConfigError(f"cost must be positive and at most the bucket capacity "
                              f"({bucket.capacity:g}), got {cost!r}")
        self.bucket = bucket
        self.cost = cost
        self.excluded = _excluder(exclude_paths)

    async def __call__(self, request: Any, call_next: Any) -> Response:
        if self.excluded(request.path):
            return await call_next(request)
        key = self.key_fn(request)
        if inspect.isawaitable(key):
            key = await key
        if key is None:  # NOTE: a custom key function may opt a request out
            return await call_next(request)
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
