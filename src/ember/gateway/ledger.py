"""Per-key limits and budgets in one Redis round trip per phase.

When the gateway keeps both its per-key limits (:mod:`ember.gateway.limits`) and its
budgets (:mod:`ember.gateway.budgets`) in the same Redis (``limit_store`` and
``budget_store`` the same URL), a request talks to Redis twice in all:

* **reserve** (one Lua script): the key's RPM and TPM buckets, its concurrency slots
  and the reservation on every budget line (the key's, its team's) are checked, then
  all taken — or, when one refuses, nothing is taken.  The answer says which refused
  (a limit, with its wait; or the 1-based budget line).
* **settle** (one Lua script): the concurrency slot goes back, the tokens the request
  did not use go back to the TPM bucket, and every budget line gets the real usage in
  place of the reservation.

The keys and their layout are the separate stores' (``ember:limits:{key}:r|t|c`` and
``ember:budget:<line>``), so a host on this path and a host on the two-store path
share the same counters.  With different URLs the two stores stay separate (one round
trip each).  A Redis error raises :class:`~ember.gateway.budgets.StoreUnavailable`;
the gateway applies each side's policy (budgets fail closed, limits fail open).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ember.gateway.budgets import Line, StoreUnavailable
from ember.gateway.limits import LEASE

#: No limits on this request: (rpm, tpm, max_concurrent) all off.
NO_LIMITS = (-1, -1, -1)

# KEYS: rpm bucket, tpm bucket, slots, then the budget lines.
# ARGV: rpm, tpm, conc, tokens, request id, lease, nanos, then per line: token limit,
# nano limit, ttl.  Answer: {reason, wait, requests left, tokens left, budget line}:
# reason 0 ok | 1 rpm | 2 tpm | 3 concurrency | 4 request over tpm | 5 budget line.
_RESERVE = """
local rpm, tpm, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local need, lease, nanos = tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[7])
local now = 0
if rpm >= 0 or tpm >= 0 or conc >= 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
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
  if rl < 1 then return {1, tostring((1 - rl) * 60 / rpm), tostring(rl), tostring(tl), 0} end
end
if tpm >= 0 then
  if need > tpm then return {4, '60', tostring(rl), tostring(tpm), 0} end
  tl = level(KEYS[2], tpm)
  if tl < need then
    return {2, tostring((need - tl) * 60 / tpm), tostring(rl), tostring(tl), 0}
  end
end
if conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= conc then
    return {3, '1', tostring(rl), tostring(tl), 0}
  end
end
for i = 4, #KEYS do
  local j = 3 * i - 4
  local lt, lc = tonumber(ARGV[j]), tonumber(ARGV[j + 1])
  local v = redis.call('HMGET', KEYS[i], 't', 'c')
  local ut, uc = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  if (lt >= 0 and ut + need > lt) or (lc >= 0 and uc + nanos > lc) then
    return {5, '0', tostring(rl), tostring(tl), i - 3}
  end
end
if conc >= 0 then
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
for i = 4, #KEYS do
  redis.call('HINCRBY', KEYS[i], 't', need)
  redis.call('HINCRBY', KEYS[i], 'c', nanos)
  if redis.call('TTL', KEYS[i]) < 0 then
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3 * i - 2]))
  end
end
return {0, '0', tostring(rl), tostring(tl), 0}
"""

# KEYS: rpm bucket, tpm bucket, slots, then the budget lines.
# ARGV: request id ('' = no slot), tpm refund, tpm, token delta, nano delta, then per
# line: ttl.
_SETTLE = """
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[3], ARGV[1]) end
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
local dt, dc = tonumber(ARGV[4]), tonumber(ARGV[5])
if dt ~= 0 or dc ~= 0 then
  for i = 4, #KEYS do
    local nt = redis.call('HINCRBY', KEYS[i], 't', dt)
    local nc = redis.call('HINCRBY', KEYS[i], 'c', dc)
    if nt < 0 then redis.call('HSET', KEYS[i], 't', 0) end
    if nc < 0 then redis.call('HSET', KEYS[i], 'c', 0) end
    if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], tonumber(ARGV[i + 2])) end
  end
end
return 0
"""

#: A reserve's answer: (reason, wait, requests left, tokens left, refused budget line).
Answer = tuple[int, float, float, float, int]


class RedisLedger:
    """Limits and budgets of one gateway in one Redis: one script per phase."""

    shared = True

    def __init__(self, limit_store: Any, budget_store: Any) -> None:
        self.url = budget_store.url
        self.timeout = min(limit_store.timeout, budget_store.timeout)
        self.limit_prefix = limit_store.prefix
        self.budget_prefix = budget_store.prefix
        self._client: Any = None
        self._scripts: tuple[Any, Any] | None = None

    def _redis(self) -> tuple[Any, Any]:
        if self._scripts is None:
            from ember.gateway._redis import client
            from ember.gateway._resp import lean_client

            # PERF: the lean pipelined client when it can (ember.gateway._resp)
            self._client = lean_client(self.url, self.timeout) or client(
                self.url, self.timeout, "Redis budgets and limits")
            self._scripts = (self._client.register_script(_RESERVE),
                             self._client.register_script(_SETTLE))
        return self._scripts

    def _keys(self, key: str, lines: Sequence[Line]) -> list[str]:
        base = f"{self.limit_prefix}{{{key}}}"
        prefix = self.budget_prefix
        return [base + ":r", base + ":t", base + ":c", *(prefix + line[0] for line in lines)]

    async def reserve(self, key: str, limits: tuple[int, int, int], rid: str, tokens: int,
                      lines: Sequence[Line], nanos: int) -> Answer:
        """Check then take the key's limits and ``tokens``/``nanos`` on every budget
        line, all or nothing (see the module docstring)."""
        args: list[Any] = [*limits, tokens, rid, LEASE, nanos]
        for _name, lt, lc, ttl in lines:
            args += (lt, lc, ttl)
        try:
            out = await self._redis()[0](keys=self._keys(key, lines), args=args)
        except Exception as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        return int(out[0]), float(out[1]), float(out[2]), float(out[3]), int(out[4])

    async def settle(self, key: str, tpm: int, rid: str, refund: int,
                     lines: Sequence[Line], tokens: int, nanos: int) -> None:
        """Give back the slot of ``rid`` (``''``: none) and ``refund`` TPM tokens, and add
        ``tokens``/``nanos`` (negative: refund) on every budget line."""
        args: list[Any] = [rid, refund, tpm, tokens, nanos, *(line[3] for line in lines)]
        try:
            await self._redis()[1](keys=self._keys(key, lines), args=args)
        except Exception as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    async def aclose(self) -> None:
        """Close the connection pool (at worker shutdown)."""
        client, self._client, self._scripts = self._client, None, None
        if client is not None:
            await client.aclose()


def ledger_for(limit_store: Any, budgets: Any) -> RedisLedger | None:
    """The one-script path when the limits and the budgets live in the same Redis."""
    from ember.gateway.budgets import RedisBudgetStore
    from ember.gateway.limits import RedisLimitStore

    store = getattr(budgets, "store", None)
    if type(limit_store) is RedisLimitStore and type(store) is RedisBudgetStore and \
            limit_store.url == store.url:
        return RedisLedger(limit_store, store)
    return None
