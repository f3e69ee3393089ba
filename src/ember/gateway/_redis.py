"""The Redis client of the gateway's shared stores (budgets, limits, keys, responses).

``redis.asyncio.from_url`` gives a pool of at most 100 connections that **raises**
``MaxConnectionsError`` when a 101st request needs one: under a burst of concurrent
requests a worker's budget store would look down (503, fail closed) while Redis is
fine.  These clients use a blocking pool instead: at most :data:`MAX_CONNECTIONS` per
worker, and a request that finds them all busy waits for one (within the store's
timeout) instead of failing.
"""

from __future__ import annotations

from typing import Any

#: Connections per worker and store; more requests wait for one (Redis answers in µs).
MAX_CONNECTIONS = 64


def client(url: str, timeout: float, feature: str) -> Any:
    """A ``redis.asyncio`` client on a blocking pool (closing it closes the pool)."""
    try:
        import redis.asyncio as aioredis
    except ImportError:
        from ember.exceptions import MissingDependency

        raise MissingDependency("redis", "cache", feature) from None
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=timeout, socket_timeout=timeout,
        socket_connect_timeout=min(1.0, timeout))
    return aioredis.Redis.from_pool(pool)
