"""An in-process cache without expiry (health checks, static data)."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from ember.cache.base import RouteCache
from ember.cache.keys import CacheKey
from ember.exceptions import ConfigError

_Slot = tuple[str, str, str, str]  # (path, query, variant, origin)


class StaticCache(RouteCache):
    """``StaticCache()``: entries live in this worker's memory until evicted.

    No TTL by default (``ttl=`` adds one); at most ``max_entries`` entries, the least
    recently used evicted first, so random query strings cannot grow it without bound.
    Each worker process has its own copy.
    """

    backend = "StaticCache"

    def __init__(self, ttl: float | None = None, *, max_entries: int = 10_000,
                 **options: Any) -> None:
        super().__init__(ttl, **options)
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries <= 0:
            raise ConfigError(f"max_entries must be a positive int, got {max_entries!r}")
        self.max_entries = max_entries
        self._data: OrderedDict[_Slot, tuple[float, bytes]] = OrderedDict()
        # NOTE: bumped by every invalidation, so a computation that started before one
        # is not stored after it (it may already be stale).
        self._epoch = 0

    async def _lookup(self, key: CacheKey) -> tuple[Any, bytes | None]:
        slot = (key.path, key.query, key.variant, key.origin)
        item = self._data.get(slot)
        if item is not None:
            expires, blob = item
            if expires and expires < time.monotonic():
                del self._data[slot]
            else:
                self._data.move_to_end(slot)
                return (slot, self._epoch), blob
        return (slot, self._epoch), None

    async def _store(self, handle: Any, blob: bytes) -> None:
        slot, epoch = handle
        if epoch != self._epoch:
            return
        expires = time.monotonic() + self.ttl if self.ttl else 0.0
        self._data[slot] = (expires, blob)
        self._data.move_to_end(slot)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def _invalidate(self, path: str, query: str | None) -> None:
        self._epoch += 1
        doomed = [s for s in self._data if s[0] == path and (query is None or s[1] == query)]
        for slot in doomed:
            del self._data[slot]

    async def _clear(self) -> None:
        self._epoch += 1
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
