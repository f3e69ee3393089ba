"""Per-key request limits of the gateway: RPM, TPM and concurrent requests.

    from ember.gateway import KeyLimits
    app.mount_openai("gpt-4o-mini", api_keys={"a": "sk-a", "b": "sk-b"},
                     limits={"a": KeyLimits(rpm=600, tpm=200_000, max_concurrent=20)},
                     limit_store="redis://localhost:6379")

RPM and TPM are token buckets refilled continuously (``rpm`` requests and ``tpm`` tokens
per 60 s, bursts up to the full amount).  A request takes one request and its worst
case in tokens (:mod:`ember.gateway.costing`) at admission; when it ends the tokens it
did not use go back.  ``max_concurrent`` counts the key's requests in flight (streams
until they end).  Check and take are one step (a Lua script in Redis, no await in
memory), so concurrent requests cannot slip past a limit.  A refused request gets 429
``rate_limit_exceeded`` with ``Retry-After`` and OpenAI's ``x-ratelimit-*`` headers.

Stores: :class:`MemoryLimitStore` (per worker process) and :class:`RedisLimitStore`
(shared; Redis's clock, so hosts with skewed clocks agree).  A concurrency slot is a
lease (:data:`LEASE`): a process that dies holding slots frees them when it expires.
When the Redis store is down requests are served without per-key limits and the
gateway logs once (fail open: limits protect capacity, budgets protect money).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from ember._redact import redact_url

logger = logging.getLogger("ember.gateway")

#: Seconds a concurrency slot lives without being released (a crashed holder).
LEASE = 600.0


class KeyLimits:
    """At most ``rpm`` requests and ``tpm`` tokens per minute and ``max_concurrent``
    requests in flight for one key (each None: no limit)."""

    __slots__ = ("max_concurrent", "rpm", "tpm")

    def __init__(self, rpm: int | None = None, tpm: int | None = None,
                 max_concurrent: int | None = None) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm), ("max_concurrent", max_concurrent)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"KeyLimits {name} must be a positive int or None, "
                                 f"got {value!r}")
        self.rpm = rpm
        self.tpm = tpm
        self.max_concurrent = max_concurrent

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.rpm, self.tpm, self.max_concurrent))

    def __repr__(self) -> str:
        return (f"KeyLimits(rpm={self.rpm!r}, tpm={self.tpm!r}, "
                f"max_concurrent={self.max_concurrent!r})")

    def args(self) -> tuple[int, int, int]:
        """``(rpm, tpm, max_concurrent)`` with -1 for no limit."""
        return (-1 if self.rpm is None else self.rpm, -1 if self.tpm is None else self.tpm,
                -1 if self.max_concurrent is None else self.max_concurrent)


#: Verdict of an acquire: (0 ok | 1 rpm | 2 tpm | 3 concurrency | 4 request over tpm,
#: seconds to wait, requests left, tokens left)
Verdict = tuple[int, float, float, float]


def _level(state: list[float] | None, cap: int, now: float) -> float:
    if state is None:
        return float(cap)
    return min(float(cap), state[0] + (now - state[1]) * cap / 60.0)


class MemoryLimitStore:
    """Buckets and slots in this process; no await between check and take."""

    shared = False

    def __init__(self) -> None:
        self._buckets: dict[str, list[float]] = {}  # name -> [level, at]
        self._slots: dict[str, dict[str, float]] = {}  # key -> {request id: lease end}

    async def acquire(self, key: str, limits: KeyLimits, tokens: int, rid: str) -> Verdict:
        """Take one request, ``tokens`` and a slot for ``rid``, or nothing."""
        now = time.monotonic()
        rpm, tpm, conc = limits.args()
        rl = tl = -1.0
        if rpm >= 0:
            rl = _level(self._buckets.get(f"{key}:r"), rpm, now)
            if rl < 1:
                return 1, (1 - rl) * 60.0 / rpm, rl, tl
        if tpm >= 0:
            if tokens > tpm:
                return 4, 60.0, rl, tpm
            tl = _level(self._buckets.get(f"{key}:t"), tpm, now)
            if tl < tokens:
                return 2, (tokens - tl) * 60.0 / tpm, rl, tl
        if conc >= 0:
            slots = self._slots.setdefault(key, {})
            for stale in [r for r, end in slots.items() if end < now]:
                del slots[stale]
            if len(slots) >= conc:
                return 3, 1.0, rl, tl
            slots[rid] = now + LEASE
        if rpm >= 0:
            rl -= 1
            self._buckets[f"{key}:r"] = [rl, now]
        if tpm >= 0:
            tl -= tokens
            self._buckets[f"{key}:t"] = [tl, now]
        if len(self._buckets) > 100_000:  # NOTE: bound memory under many keys
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
        return 0, 0.0, rl, tl

    async def release(self, key: str, limits: KeyLimits, rid: str, refund: int) -> None:
        """Give back the slot of ``rid`` and ``refund`` tokens (negative: take more)."""
        slots = self._slots.get(key)
        if slots is not None:
            slots.pop(rid, None)
            if not slots:
                del self._slots[key]
        if refund and limits.tpm is not None:
            now = time.monotonic()
            name = f"{key}:t"
            level = _level(self._buckets.get(name), limits.tpm, now)
            self._buckets[name] = [min(float(limits.tpm), level + refund), now]


_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rpm, tpm, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local need, lease = tonumber(ARGV[4]), tonumber(ARGV[6])
local function level(k, cap)
  local v = redis.call('HMGET', k, 'l', 'at')
  if not v[1] then return cap end
  local l = tonumber(v[1]) + (now - tonumber(v[2])) * cap / 60
  if l > cap then l = cap end
  return l
end
local rl, tl = -1, -1
if rpm >= 0 then
  rl = level(KEYS[1], rpm)
  if rl < 1 then return {1, tostring((1 - rl) * 60 / rpm), tostring(rl), tostring(tl)} end
end
if tpm >= 0 then
  if need > tpm then return {4, '60', tostring(rl), tostring(tpm)} end
  tl = level(KEYS[2], tpm)
  if tl < need then
    return {2, tostring((need - tl) * 60 / tpm), tostring(rl), tostring(tl)}
  end
end
if conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= conc then
    return {3, '1', tostring(rl), tostring(tl)}
  end
  redis.call('ZADD', KEYS[3], now + lease, ARGV[5])
  redis.call('EXPIRE', KEYS[3], math.ceil(lease))
end
if rpm >= 0 then
  rl = rl - 1
  redis.call('HSET', KEYS[1], 'l', tostring(rl), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[1], 61)
end
if tpm >= 0 then
  tl = tl - need
  redis.call('HSET', KEYS[2], 'l', tostring(tl), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[2], 61)
end
return {0, '0', tostring(rl), tostring(tl)}
"""

_RELEASE = """
redis.call('ZREM', KEYS[3], ARGV[1])
local refund, tpm = tonumber(ARGV[2]), tonumber(ARGV[3])
if refund ~= 0 and tpm >= 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local v = redis.call('HMGET', KEYS[2], 'l', 'at')
  local l = tpm
  if v[1] then l = tonumber(v[1]) + (now - tonumber(v[2])) * tpm / 60 end
  l = l + refund
  if l > tpm then l = tpm end
  redis.call('HSET', KEYS[2], 'l', tostring(l), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[2], 61)
end
return 0
"""


class RedisLimitStore:
    """Buckets and slots in Redis, shared by workers and hosts (one script per phase)."""

    shared = True

    def __init__(self, url: str, prefix: str = "ember:limits:", timeout: float = 3.0) -> None:
        self.url = url
        self.timeout = timeout  # NOTE: seconds per Redis call, event-loop lag included
        self.prefix = prefix
        self._client: Any = None
        self._scripts: tuple[Any, Any] | None = None
        self._warned = False

    def _redis(self) -> tuple[Any, Any]:
        if self._scripts is None:
            from ember.gateway._redis import client

            self._client = client(self.url, self.timeout, "Redis rate limits")
            self._scripts = (self._client.register_script(_ACQUIRE),
                             self._client.register_script(_RELEASE))
        return self._scripts

    def _keys(self, key: str) -> list[str]:
        base = f"{self.prefix}{{{key}}}"
        return [base + ":r", base + ":t", base + ":c"]

    def up(self) -> None:
        """Redis answered: log again when it next goes down."""
        self._warned = False

    def down(self, exc: Exception) -> None:
        """Log (once until it is back) that Redis is unavailable."""
        if not self._warned:
            self._warned = True
            logger.warning("gateway limits: Redis at %s unavailable (%s); serving without "
                           "per-key limits until it is back", redact_url(self.url),
                           type(exc).__name__)

    async def acquire(self, key: str, limits: KeyLimits, tokens: int, rid: str) -> Verdict:
        """As :meth:`MemoryLimitStore.acquire`, atomically in Redis."""
        rpm, tpm, conc = limits.args()
        try:
            out = await self._redis()[0](keys=self._keys(key),
                                         args=[rpm, tpm, conc, tokens, rid, LEASE])
        except Exception as exc:  # NOTE: fail open (see the module docstring)
            self.down(exc)
            return 0, 0.0, -1.0, -1.0
        self.up()
        return int(out[0]), float(out[1]), float(out[2]), float(out[3])

    async def release(self, key: str, limits: KeyLimits, rid: str, refund: int) -> None:
        """As :meth:`MemoryLimitStore.release`, atomically in Redis."""
        try:
            await self._redis()[1](keys=self._keys(key),
                                   args=[rid, refund, limits.args()[1]])
        except Exception as exc:
            self.down(exc)

    async def aclose(self) -> None:
        """Close the connection pool (at worker shutdown)."""
        client, self._client, self._scripts = self._client, None, None
        if client is not None:
            await client.aclose()


def make_limit_store(store: Any) -> Any:
    """A store from ``limit_store=``: None (memory), a redis:// URL, or a store object."""
    if store is None:
        return MemoryLimitStore()
    if isinstance(store, str):
        if not store.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"limit_store must be a redis:// URL or a store, got "
                             f"{redact_url(store)!r}")
        return RedisLimitStore(store)
    if not all(callable(getattr(store, m, None)) for m in ("acquire", "release")):
        raise ValueError(f"limit_store must be a redis:// URL or a store with acquire/"
                         f"release, got {type(store).__name__}")
    return store


def parse_limits(limits: Any) -> tuple[KeyLimits | None, dict[str, KeyLimits]]:
    """``limits=``: one :class:`KeyLimits` for every key, or a dict key name -> limits."""
    if limits is None:
        return None, {}
    if isinstance(limits, KeyLimits):
        return limits, {}
    if isinstance(limits, Mapping) and all(isinstance(k, str) and isinstance(v, KeyLimits)
                                           for k, v in limits.items()):
        return None, dict(limits)
    raise ValueError(f"limits= takes a KeyLimits or a dict of key name -> KeyLimits, "
                     f"got {limits!r}")


_REASONS = {
    1: "Rate limit reached for requests per minute on this key.",
    2: "Rate limit reached for tokens per minute on this key.",
    3: "Too many concurrent requests on this key.",
    4: "This request's maximum size is over the key's tokens-per-minute limit; lower "
       "max_tokens.",
}


def headers(verdict: Verdict, limits: KeyLimits) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers after an acquire (sent on every answer)."""
    _reason, _wait, req_left, tok_left = verdict
    out: dict[str, str] = {}
    if limits.rpm is not None and req_left >= -1:
        out["x-ratelimit-limit-requests"] = str(limits.rpm)
        out["x-ratelimit-remaining-requests"] = str(max(0, math.floor(req_left)))
        out["x-ratelimit-reset-requests"] = _duration(
            (limits.rpm - max(0.0, req_left)) * 60.0 / limits.rpm)
    if limits.tpm is not None:
        out["x-ratelimit-limit-tokens"] = str(limits.tpm)
        out["x-ratelimit-remaining-tokens"] = str(max(0, math.floor(tok_left)))
        out["x-ratelimit-reset-tokens"] = _duration(
            (limits.tpm - max(0.0, tok_left)) * 60.0 / limits.tpm)
    return out


def refusal(verdict: Verdict, limits: KeyLimits) -> tuple[str, float, dict[str, str]]:
    """``(message, retry after, x-ratelimit-* headers)`` of a refused acquire."""
    return _REASONS.get(verdict[0], "Rate limit reached."), verdict[1], headers(verdict, limits)


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``"1s"``, ``"6m0s"``, ``"120ms"``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
