"""Per-key budgets of the gateway: tokens and/or USD per period, in memory or Redis.

    from ember.gateway import Budget
    app.mount_openai("gpt-4o-mini", api_keys={"team-a": "sk-a", "team-b": "sk-b"},
                     budget={"team-a": Budget(tokens=1_000_000, period="day"),
                             "team-b": Budget(cost=5.0, period="month")},
                     budget_store="redis://localhost:6379")

Periods are fixed windows aligned on the epoch (``"day"`` resets at 00:00 UTC,
``"month"`` is 30 days); a key over its budget gets a 429 (``insufficient_quota``)
until the window ends.  The check happens before the upstream call and the real
usage is charged after it, so one request may overshoot by its own size.  Redis
keeps the counts shared by every worker and host (``HINCRBYFLOAT`` + ``EXPIRE``);
when Redis is down the gateway serves and logs once (fail open).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ember._redact import redact_url

logger = logging.getLogger("ember.gateway")

PERIODS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0,
           "month": 30 * 86400.0}


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
                                 or cost < 0):
            raise ValueError(f"Budget cost must be a non-negative number (USD), got {cost!r}")
        seconds = PERIODS.get(period) if isinstance(period, str) else period
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError(f"Budget period must be one of {', '.join(PERIODS)} or seconds > 0, "
                             f"got {period!r}")
        self.tokens = tokens
        self.cost = cost
        self.period = float(seconds)

    def exceeded(self, tokens: float, cost: float) -> bool:
        """Whether usage ``tokens``/``cost`` is at or over the budget."""
        return (self.tokens is not None and tokens >= self.tokens) or (
            self.cost is not None and cost >= self.cost)

    def __repr__(self) -> str:
        return f"Budget(tokens={self.tokens!r}, cost={self.cost!r}, period={self.period!r})"


class MemoryBudgetStore:
    """Usage per (key, window) in this process (one worker)."""

    def __init__(self) -> None:
        self._used: dict[tuple[str, int], list[float]] = {}

    async def used(self, key: str, window: int) -> tuple[float, float]:
        entry = self._used.get((key, window))
        return (entry[0], entry[1]) if entry else (0.0, 0.0)

    async def add(self, key: str, window: int, tokens: float, cost: float,
                  ttl: float) -> None:
        entry = self._used.get((key, window))
        if entry is None:
            for old in [k for k in self._used if k[0] == key and k[1] < window]:
                del self._used[old]
            entry = self._used[(key, window)] = [0.0, 0.0]
        entry[0] += tokens
        entry[1] += cost


class RedisBudgetStore:
    """Usage per (key, window) in Redis, shared by workers and hosts."""

    def __init__(self, url: str, prefix: str = "ember:budget:") -> None:
        self.url = url
        self.prefix = prefix
        self._client: Any = None
        self._warned = False

    def _redis(self) -> Any:
        if self._client is None:
            try:
                import redis.asyncio as aioredis
            except ImportError:
                from ember.exceptions import MissingDependency

                raise MissingDependency("redis", "cache", "Redis budgets") from None
            self._client = aioredis.from_url(self.url, socket_timeout=1.0,
                                             socket_connect_timeout=1.0)
        return self._client

    def _failed(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("gateway budgets: Redis at %s unavailable (%s); serving without "
                           "budget checks until it is back", redact_url(self.url),
                           type(exc).__name__)

    async def aclose(self) -> None:
        """Close the connection pool (at worker shutdown)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def used(self, key: str, window: int) -> tuple[float, float]:
        try:
            values = await self._redis().hmget(f"{self.prefix}{key}:{window}", "t", "c")
        except Exception as exc:  # NOTE: fail open, as the caches and rate limits do
            self._failed(exc)
            return 0.0, 0.0
        self._warned = False
        return float(values[0] or 0), float(values[1] or 0)

    async def add(self, key: str, window: int, tokens: float, cost: float,
                  ttl: float) -> None:
        name = f"{self.prefix}{key}:{window}"
        try:
            pipe = self._redis().pipeline(transaction=False)
            pipe.hincrbyfloat(name, "t", tokens)
            pipe.hincrbyfloat(name, "c", cost)
            pipe.expire(name, int(ttl) + 60)
            await pipe.execute()
        except Exception as exc:
            self._failed(exc)


class Budgets:
    """The budgets of one gateway: which key has which budget, and the store."""

    def __init__(self, budget: Budget | dict[str, Budget], store: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        if isinstance(budget, Budget):
            self.default: Budget | None = budget
            self.per_key: dict[str, Budget] = {}
        elif isinstance(budget, dict) and all(isinstance(b, Budget) for b in budget.values()):
            self.default = None
            self.per_key = dict(budget)
        else:
            raise ValueError("budget= takes a Budget or a dict of key name -> Budget, "
                             f"got {budget!r}")
        if store is None:
            store = MemoryBudgetStore()
        elif isinstance(store, str):
            if not store.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError(f"budget_store must be a redis:// URL or a store, got "
                                 f"{redact_url(store)!r}")
            store = RedisBudgetStore(store)
        self.store = store
        self.clock = clock

    def of(self, key: str) -> Budget | None:
        return self.per_key.get(key, self.default)

    def _window(self, budget: Budget) -> tuple[int, float]:
        now = self.clock()
        window = int(now // budget.period)
        return window, (window + 1) * budget.period - now

    async def check(self, key: str) -> float | None:
        """None when ``key`` may spend; else seconds until its budget renews."""
        budget = self.of(key)
        if budget is None:
            return None
        window, left = self._window(budget)
        tokens, cost = await self.store.used(key, window)
        return left if budget.exceeded(tokens, cost) else None

    async def aclose(self) -> None:
        """Release the store's connections."""
        close = getattr(self.store, "aclose", None)
        if close is not None:
            await close()

    async def charge(self, key: str, tokens: int, cost: float) -> None:
        """Add a call's real usage to ``key``'s current window."""
        budget = self.of(key)
        if budget is None or (tokens <= 0 and cost <= 0):
            return
        window, _left = self._window(budget)
        await self.store.add(key, window, float(tokens), float(cost), budget.period)
