"""An in-process cache without expiry (health checks, static data)."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from ember.cache.base import RouteCache
from ember.exceptions import ConfigError


class StaticCache(RouteCache):
    """Entries live until evicted (LRU past ``max_entries``) or ``ttl`` when given."""

    backend = "StaticCache"

    def __init__(self, ttl: float | None = None, *, max_entries: int = 10_000,
                 **options: Any) -> None:
        super().__init__(ttl, **options)
        if not isinstance(max_entries, int) or max_entries <= 0:
            raise ConfigError(f"max_entries must be a positive int, got {max_entries!r}")
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def _get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, blob = item
        if expires and expires < time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return blob

    async def _set(self, key: str, value: bytes) -> None:
        expires = time.monotonic() + self.ttl if self.ttl else 0.0
        self._data[key] = (expires, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def _delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def _clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
