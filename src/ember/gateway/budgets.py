"""Per-key budgets of the gateway: tokens and/or USD per period, held by reservation.

    from ember.gateway import Budget
    app.mount_openai("gpt-4o-mini", api_keys={"team-a": "sk-a", "team-b": "sk-b"},
                     budget={"team-a": Budget(tokens=1_000_000, period="day"),
                             "team-b": Budget(cost=5.0, period="month")},
                     budget_store="redis://localhost:6379")

Periods are fixed windows aligned on the epoch (``"day"`` resets at 00:00 UTC,
``"month"`` is 30 days).  Before the upstream call the gateway **reserves** the
request's worst case (:mod:`ember.gateway.costing`) against every budget that applies
(the key's, its team's); the reservation either fits every budget and is taken from
all of them at once, or the request gets a 429 (``insufficient_quota``) and nothing is
taken.  After the call the reservation is **settled**: the real usage replaces it (the
difference is refunded).  So a budget is never exceeded, at any concurrency.

Stores: :class:`MemoryBudgetStore` (exact within one worker process: with
``workers > 1`` each worker has its own budget, and the gateway warns at startup) and
:class:`RedisBudgetStore` (one Lua script per reserve and per settle: exact across
workers and hosts).  Cost is kept in integer nano-USD, so refunds never drift.

When the shared store is down a budgeted request gets 503 + ``Retry-After`` (fail
closed: a budget is money) unless the gateway was mounted with
``budget_fail_open=True``, which serves unbudgeted while the store is down and logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ember._redact import redact_url

logger = logging.getLogger("ember.gateway")

PERIODS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0,
           "month": 30 * 86400.0}
NANO = 1_000_000_000  # cost unit in the stores: nano-USD (integers)


class Budget:
    """At most ``tokens`` tokens and/or ``cost`` USD per ``period`` (a name or seconds)."""

    __slots__ = ("cost", "period", "tokens")

    def __init__(self, tokens: int | None = None, cost: float | None = None,
                 period: str | float = "day") -> None:
        if tokens is None and cost is None:
            raise ValueError("Budget needs tokens=... or cost=... (or both)")
        if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int)
                                   or tokens < 0):
            raise ValueError(f"Budget tokens must be a non-negative int, got {tokens!r}")
        if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int | float)
                                 or not cost >= 0 or cost == float("inf")):
            raise ValueError(f"Budget cost must be a non-negative number (USD), got {cost!r}")
        seconds = PERIODS.get(period) if isinstance(period, str) else period
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or \
                not 0 < seconds < float("inf"):
            raise ValueError(f"Budget period must be one of {', '.join(PERIODS)} or seconds > 0, "
                             f"got {period!r}")
        self.tokens = tokens
        self.cost = cost
        self.period = float(seconds)

    @property
    def nanos(self) -> int:
        """The cost limit in nano-USD, -1 without one."""
        return -1 if self.cost is None else round(self.cost * NANO)

    def exceeded(self, tokens: float, cost: float) -> bool:
        """Whether usage ``tokens``/``cost`` is at or over the budget."""
        return (self.tokens is not None and tokens >= self.tokens) or (
            self.cost is not None and cost >= self.cost)

    def __repr__(self) -> str:
        return f"Budget(tokens={self.tokens!r}, cost={self.cost!r}, period={self.period!r})"


#: One budget line of a reservation: (store key, token limit or -1, nano-USD limit or -1,
#: seconds to keep the counter).
Line = tuple[str, int, int, int]


class StoreUnavailable(Exception):
    """The budget store could not be reached."""


class MemoryBudgetStore:
    """Counters in this process (one worker); no await between check and take."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._used: dict[str, list[int | float]] = {}  # name -> [tokens, nanos, expires]
        self._clock = clock

    def _prune(self, now: float) -> None:
        for name in [n for n, v in self._used.items() if v[2] < now]:
            del self._used[name]

    async def reserve(self, lines: Sequence[Line], tokens: int, nanos: int) -> int:
        """Take ``tokens``/``nanos`` from every line, or none: 0, else the 1-based index
        of the first line it does not fit."""
        used = self._used
        for i, (name, lt, lc, _ttl) in enumerate(lines, 1):
            entry = used.get(name)
            ut, uc = (entry[0], entry[1]) if entry is not None else (0, 0)
            if (lt >= 0 and ut + tokens > lt) or (lc >= 0 and uc + nanos > lc):
                return i
        now = self._clock()
        if len(used) > 4096:
            self._prune(now)
        for name, _lt, _lc, ttl in lines:
            entry = used.get(name)
            if entry is None:
                entry = used[name] = [0, 0, now + ttl]
            entry[0] += tokens
            entry[1] += nanos
        return 0

    async def adjust(self, lines: Sequence[Line], tokens: int, nanos: int) -> None:
        """Add (or, negative, refund) ``tokens``/``nanos`` on every line."""
        now = self._clock()
        for name, _lt, _lc, ttl in lines:
            entry = self._used.get(name)
            if entry is None:
                entry = self._used[name] = [0, 0, now + ttl]
            entry[0] = max(0, entry[0] + tokens)
            entry[1] = max(0, entry[1] + nanos)

    async def used(self, name: str) -> tuple[int, int]:
        """``(tokens, nanos)`` used on a line."""
        entry = self._used.get(name)
        return (int(entry[0]), int(entry[1])) if entry else (0, 0)


# KEYS: the lines' hashes; ARGV: tokens, nanos, then per line: token limit, nano limit, ttl.
_RESERVE = """
local t = tonumber(ARGV[1])
local c = tonumber(ARGV[2])
for i, k in ipairs(KEYS) do
  local lt = tonumber(ARGV[3 * i])
  local lc = tonumber(ARGV[3 * i + 1])
  local v = redis.call('HMGET', k, 't', 'c')
  local ut = tonumber(v[1] or '0')
  local uc = tonumber(v[2] or '0')
  if (lt >= 0 and ut + t > lt) or (lc >= 0 and uc + c > lc) then return i end
end
for i, k in ipairs(KEYS) do
  redis.call('HINCRBY', k, 't', t)
  redis.call('HINCRBY', k, 'c', c)
  if redis.call('TTL', k) < 0 then redis.call('EXPIRE', k, tonumber(ARGV[3 * i + 2])) end
end
return 0
"""

# KEYS: the lines' hashes; ARGV: token delta, nano delta, then per line: ttl.
_ADJUST = """
local t = tonumber(ARGV[1])
local c = tonumber(ARGV[2])
for i, k in ipairs(KEYS) do
  local nt = redis.call('HINCRBY', k, 't', t)
  local nc = redis.call('HINCRBY', k, 'c', c)
  if nt < 0 then redis.call('HSET', k, 't', 0) end
  if nc < 0 then redis.call('HSET', k, 'c', 0) end
  if redis.call('TTL', k) < 0 then redis.call('EXPIRE', k, tonumber(ARGV[2 + i])) end
end
return 0
"""


class RedisBudgetStore:
    """Counters in Redis, shared by workers and hosts: one Lua script per phase."""

    shared = True

    def __init__(self, url: str, prefix: str = "ember:budget:", timeout: float = 3.0) -> None:
        self.url = url
        self.timeout = timeout  # NOTE: seconds per Redis call, event-loop lag included
        self.prefix = prefix
        self._client: Any = None
        self._scripts: tuple[Any, Any] | None = None

    def _redis(self) -> tuple[Any, Any]:
        if self._scripts is None:
            from ember.gateway._redis import client

            self._client = client(self.url, self.timeout, "Redis budgets")
            self._scripts = (self._client.register_script(_RESERVE),
                             self._client.register_script(_ADJUST))
        return self._scripts

    async def aclose(self) -> None:
        """Close the connection pool (at worker shutdown)."""
        client, self._client, self._scripts = self._client, None, None
        if client is not None:
            await client.aclose()

    async def reserve(self, lines: Sequence[Line], tokens: int, nanos: int) -> int:
        """As :meth:`MemoryBudgetStore.reserve`, atomically in Redis."""
        args: list[int] = [tokens, nanos]
        for _name, lt, lc, ttl in lines:
            args += [lt, lc, ttl]
        try:
            return int(await self._redis()[0](keys=[self.prefix + n for n, *_ in lines],
                                              args=args))
        except Exception as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    async def adjust(self, lines: Sequence[Line], tokens: int, nanos: int) -> None:
        """As :meth:`MemoryBudgetStore.adjust`, atomically in Redis."""
        try:
            await self._redis()[1](keys=[self.prefix + n for n, *_ in lines],
                                   args=[tokens, nanos, *(ttl for *_, ttl in lines)])
        except Exception as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    async def used(self, name: str) -> tuple[int, int]:
        """``(tokens, nanos)`` used on a line."""
        try:
            self._redis()
            values = await self._client.hmget(self.prefix + name, "t", "c")
        except Exception as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        return int(values[0] or 0), int(values[1] or 0)


class Hold:
    """A reservation: what was taken from which lines, until settled."""

    __slots__ = ("lines", "nanos", "tokens")

    def __init__(self, lines: list[Line], tokens: int, nanos: int) -> None:
        self.lines = lines
        self.tokens = tokens
        self.nanos = nanos


def reserved_nanos(cost: float) -> int:
    """``cost`` USD in nano-USD, rounded up (a reservation never undercounts)."""
    return int(cost * NANO) + (1 if cost > 0 else 0)


def delta(hold: Hold, tokens: int, cost: float) -> tuple[int, int]:
    """``(tokens, nanos)`` to add to ``hold``'s lines so they hold the real usage."""
    return tokens - hold.tokens, round(cost * NANO) - hold.nanos


class Refused(Exception):
    """The reservation does not fit: ``retry_after`` seconds until the window renews."""

    def __init__(self, scope: str, retry_after: float) -> None:
        super().__init__(scope)
        self.scope = scope
        self.retry_after = retry_after


def make_store(store: Any) -> Any:
    """A store from ``budget_store=``: None (memory), a redis:// URL, or a store object."""
    if store is None:
        return MemoryBudgetStore()
    if isinstance(store, str):
        if not store.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"budget_store must be a redis:// URL or a store, got "
                             f"{redact_url(store)!r}")
        return RedisBudgetStore(store)
    if not all(callable(getattr(store, m, None)) for m in ("reserve", "adjust", "used")):
        raise ValueError(f"budget_store must be a redis:// URL or a store with reserve/"
                         f"adjust/used, got {type(store).__name__}")
    return store


class Budgets:
    """The budgets of one gateway: which key has which budget, and the store."""

    def __init__(self, budget: Budget | dict[str, Budget] | None, store: Any = None,
                 clock: Callable[[], float] = time.time, *, fail_open: bool = False) -> None:
        if budget is None:
            self.default: Budget | None = None
            self.per_key: dict[str, Budget] = {}
        elif isinstance(budget, Budget):
            self.default = budget
            self.per_key = {}
        elif isinstance(budget, dict) and all(isinstance(b, Budget) for b in budget.values()):
            self.default = None
            self.per_key = dict(budget)
        else:
            raise ValueError("budget= takes a Budget or a dict of key name -> Budget, "
                             f"got {budget!r}")
        if not isinstance(fail_open, bool):
            raise ValueError(f"budget_fail_open must be True or False, got {fail_open!r}")
        self.store = make_store(store)
        self.clock = clock
        self.fail_open = fail_open
        self._warned = False

    def of(self, key: str) -> Budget | None:
        """The static budget of key name ``key``."""
        return self.per_key.get(key, self.default)

    def _line(self, scope: str, budget: Budget, now: float) -> tuple[Line, float]:
        window = int(now // budget.period)
        left = (window + 1) * budget.period - now
        return (f"{scope}:{window}", -1 if budget.tokens is None else budget.tokens,
                budget.nanos, int(budget.period) + 60), left

    def lines(self, scopes: Sequence[tuple[str, Budget]]) -> tuple[list[Line], list[float]]:
        """The store lines of ``(scope, budget)`` pairs for the current windows."""
        now = self.clock()
        out, lefts = [], []
        for scope, budget in scopes:
            line, left = self._line(scope, budget, now)
            out.append(line)
            lefts.append(left)
        return out, lefts

    def down(self, exc: Exception) -> None:
        """Log (once until it is back) that the store is unavailable."""
        if not self._warned:
            self._warned = True
            logger.warning("gateway budgets: the store at %s is unavailable (%s); %s",
                           redact_url(getattr(self.store, "url", "memory")), exc,
                           "serving unbudgeted (budget_fail_open=True)" if self.fail_open
                           else "budgeted requests get 503 until it is back")

    def up(self) -> None:
        """The store answered: log again when it next goes down."""
        self._warned = False

    async def reserve(self, scopes: Sequence[tuple[str, Budget]], tokens: int,
                      cost: float) -> Hold | None:
        """Take the worst case from every scope's budget; None when unbudgeted (or the
        store is down and ``fail_open``).  Raises :class:`Refused` or
        :class:`StoreUnavailable`."""
        if not scopes:
            return None
        lines, lefts = self.lines(scopes)
        nanos = reserved_nanos(cost)
        try:
            refused = await self.store.reserve(lines, tokens, nanos)
        except StoreUnavailable as exc:
            self.down(exc)
            if self.fail_open:
                return None
            raise
        self._warned = False
        if refused:
            raise Refused(scopes[refused - 1][0], lefts[refused - 1])
        return Hold(lines, tokens, nanos)

    async def settle(self, hold: Hold | None, tokens: int, cost: float) -> None:
        """Replace the reservation by the real usage (refund or add the difference)."""
        if hold is None:
            return
        dt, dc = delta(hold, tokens, cost)
        if dt == 0 and dc == 0:
            return
        try:
            await self.store.adjust(hold.lines, dt, dc)
        except StoreUnavailable as exc:
            # NOTE: the reservation stays taken (over-, never under-counted)
            self.down(exc)

    async def aclose(self) -> None:
        """Release the store's connections."""
        close = getattr(self.store, "aclose", None)
        if close is not None:
            await close()

    # -- the simple API (one key, no reservation) -----------------------------------------
    async def check(self, key: str) -> float | None:
        """None when ``key`` may spend; else seconds until its budget renews."""
        budget = self.of(key)
        if budget is None:
            return None
        (line,), (left,) = self.lines([(f"k:{key}", budget)])
        tokens, nanos = await self.store.used(line[0])
        return left if budget.exceeded(tokens, nanos / NANO) else None

    async def charge(self, key: str, tokens: int, cost: float) -> None:
        """Add usage to ``key``'s current window (no reservation)."""
        budget = self.of(key)
        if budget is None or (tokens <= 0 and cost <= 0):
            return
        lines, _ = self.lines([(f"k:{key}", budget)])
        await self.store.adjust(lines, int(tokens), round(cost * NANO))


def team_budgets_from(team_budgets: Any) -> dict[str, Any]:
    if team_budgets is None:
        return {}
    if not isinstance(team_budgets, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, Budget) for k, v in team_budgets.items()):
        raise ValueError("team_budgets= takes a dict of team name -> Budget, "
                         f"got {team_budgets!r}")
    return dict(team_budgets)
