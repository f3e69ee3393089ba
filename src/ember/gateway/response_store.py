"""Stored responses of ``POST {prefix}/responses`` (``store`` + ``previous_response_id``).

A small interface — ``get``, ``put``, ``delete`` of opaque JSON bytes under a key —
with two implementations: :class:`MemoryResponseStore` (per worker process, bounded,
entries expire after ``ttl`` seconds) and :class:`RedisResponseStore` (shared by
workers and hosts, ``SET ... EX ttl``).  Keys always include the gateway key's name:
a response is visible only to the key that created it.

Outage policy (Redis down): reading a stored response (``previous_response_id``,
``GET``/``DELETE``) answers 503 with ``Retry-After`` — continuing without the earlier
turns would answer wrongly; writing one fails open — the answer is still served, with
``"store": false`` in it so the client knows it cannot be continued.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

from ember._redact import redact_url

logger = logging.getLogger("ember.gateway")

DEFAULT_TTL = 3600.0
DEFAULT_MAX_ITEMS = 10_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class StoreUnavailable(Exception):
    """The shared response store cannot be reached."""


class ResponseStore(Protocol):
    """What the Responses endpoint needs from a store."""

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def delete(self, key: str) -> bool: ...

    async def aclose(self) -> None: ...


class MemoryResponseStore:
    """In this worker's memory: at most ``max_items`` entries and ``max_bytes`` in all,
    each for ``ttl`` seconds (the oldest go first).  With ``workers > 1`` each worker has
    its own: use Redis."""

    def __init__(self, ttl: float = DEFAULT_TTL, max_items: int = DEFAULT_MAX_ITEMS,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if not isinstance(ttl, int | float) or isinstance(ttl, bool) or not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        for name, value in (("max_items", max_items), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.ttl = float(ttl)
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def _pop(self, key: str) -> tuple[float, bytes] | None:
        entry = self._items.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1])
        return entry

    async def get(self, key: str) -> bytes | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._pop(key)
            return None
        return entry[1]

    async def put(self, key: str, value: bytes) -> None:
        self._pop(key)
        if len(value) > self.max_bytes:
            raise StoreUnavailable("larger than max_bytes")  # answered as "store": false
        self._items[key] = (time.monotonic() + self.ttl, value)
        self._bytes += len(value)
        while len(self._items) > self.max_items or self._bytes > self.max_bytes:
            self._pop(next(iter(self._items)))

    async def delete(self, key: str) -> bool:
        return await self.get(key) is not None and self._pop(key) is not None

    async def aclose(self) -> None:
        return None


class RedisResponseStore:
    """In Redis (``redis://`` URL), shared by every worker and host; entries expire
    after ``ttl`` seconds.  Needs the ``cache`` extra (``redis``)."""

    def __init__(self, url: str, ttl: float = DEFAULT_TTL,
                 prefix: str = "ember:responses:") -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"response_store must be a redis:// URL or a store, got "
                             f"{redact_url(str(url))!r}")
        if not isinstance(ttl, int | float) or isinstance(ttl, bool) or not ttl >= 1:
            raise ValueError(f"ttl must be at least 1 second, got {ttl!r}")
        self.url = url
        self.ttl = int(ttl)
        self.prefix = prefix
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            from ember.gateway._redis import client

            self._client = client(self.url, 1.0, "Redis response store")
        return self._client

    def _down(self, exc: Exception) -> StoreUnavailable:
        logger.warning("gateway responses: Redis at %s unavailable (%s)", redact_url(self.url),
                       type(exc).__name__)
        return StoreUnavailable(type(exc).__name__)

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._redis().get(self.prefix + key)
        except Exception as exc:
            raise self._down(exc) from None
        return bytes(value) if value is not None else None

    async def put(self, key: str, value: bytes) -> None:
        try:
            await self._redis().set(self.prefix + key, value, ex=self.ttl)
        except Exception as exc:
            raise self._down(exc) from None

    async def delete(self, key: str) -> bool:
        try:
            return bool(await self._redis().delete(self.prefix + key))
        except Exception as exc:
            raise self._down(exc) from None

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def make_store(store: Any) -> Any:
    """``response_store=`` of ``mount_openai``: None (memory), a redis URL or a store."""
    if store is None:
        return MemoryResponseStore()
    if isinstance(store, str):
        return RedisResponseStore(store)
    if all(callable(getattr(store, name, None)) for name in ("get", "put", "delete")):
        return store
    raise ValueError("response_store must be None (in memory), a redis:// URL or an object "
                     f"with async get/put/delete, got {type(store).__name__}")
