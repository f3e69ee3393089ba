"""What every route cache does; backends only look up, store and invalidate bytes.

The rules (SPEC §5), in the order :meth:`RouteCache.serve` applies them:

* Only GET and HEAD requests use the cache; HEAD reads GET's entry but never
  writes it (an explicit HEAD handler's empty body must not become GET's answer).
* A request with ``Authorization`` bypasses the cache unless the cache was built
  with ``cache_authorized=True``; then a hash of the credential is part of the key.
* A request with ``Cache-Control: no-store`` bypasses the cache.
* Only complete (non-streaming) responses with status 200, 203 or 204 are stored;
  never one with ``Set-Cookie``, ``Cache-Control: no-store`` or ``private``, or a
  ``Vary`` naming a header the cache does not vary on (``vary=[...]``).
* One computation per key at a time per worker: concurrent misses wait for the
  first one and share its response (only when that response is storable —
  a ``Set-Cookie`` or streaming response is never handed to another client).
* A backend that fails or is slow (short timeouts) makes the route serve
  uncached: the failure is logged once per outage on logger ``ember.cache``, the
  backend is skipped for ``retry_interval`` seconds, and never causes a 500.
* Responses carry ``x-cache: HIT`` or ``MISS`` (``add_header=False`` turns it off).

The cache runs inside the middleware chain: authentication middleware always runs
before a cached answer is served.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson

from ember.cache.keys import CacheKey, canonical_path, canonical_query, request_key
from ember.exceptions import ConfigError
from ember.responses import Response

logger = logging.getLogger("ember.cache")

#: statuses that are stored (everything else is served but not cached)
CACHEABLE_STATUS = frozenset((200, 203, 204))

#: headers never stored: framing, per-connection and per-response values
_NOT_STORED = frozenset((b"connection", b"keep-alive", b"transfer-encoding", b"content-length",
                         b"date", b"server", b"set-cookie", b"x-cache", b"upgrade",
                         b"proxy-connection", b"te", b"trailer", b"x-request-id"))

_MAGIC = b"EC1"


def encode_entry(response: Response) -> bytes:
    """Status, headers (minus hop-by-hop ones) and body in one compact blob."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers
               if k not in _NOT_STORED]
    meta = orjson.dumps({"s": response.status_code, "h": headers})
    return _MAGIC + struct.pack("!I", len(meta)) + meta + response.body


def decode_entry(blob: bytes) -> Response:
    """The Response stored by :func:`encode_entry` (``ValueError`` when corrupt)."""
    if not blob.startswith(_MAGIC) or len(blob) < 7:
        raise ValueError("not a cache entry")
    (n,) = struct.unpack_from("!I", blob, 3)
    meta = orjson.loads(blob[7:7 + n])
    response = Response(blob[7 + n:], meta["s"])
    response.raw_headers[:] = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in meta["h"]]
    return response


def _copy(response: Response) -> Response:
    copy = Response(response.body, response.status_code)
    copy.raw_headers[:] = list(response.raw_headers)
    return copy


def _check_ttl(ttl: Any) -> None:
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))
                            or not ttl > 0 or ttl == float("inf")):
        raise ConfigError(f"ttl must be a positive number of seconds or None, got {ttl!r}")


class RouteCache:
    """The shared serving logic; a backend implements ``_lookup``, ``_store``,
    ``_invalidate`` and ``_clear`` (and ``startup``/``shutdown`` when it connects)."""

    #: a human name for logs
    backend = "cache"

    def __init__(self, ttl: float | None = None, *, vary: Sequence[str] = (),
                 cache_authorized: bool = False, add_header: bool = True,
                 retry_interval: float = 2.0) -> None:
        _check_ttl(ttl)
        if isinstance(vary, str):
            raise ConfigError("vary must be a list of header names, e.g. ['accept-language'], "
                              "not a string")
        if not all(isinstance(h, str) and h for h in vary):
            raise ConfigError(f"vary must be a list of header names, got {vary!r}")
        if not isinstance(retry_interval, (int, float)) or retry_interval < 0:
            raise ConfigError(f"retry_interval must be >= 0 seconds, got {retry_interval!r}")
        self.ttl = ttl
        self.vary = tuple(dict.fromkeys(h.strip().lower() for h in vary))
        self.cache_authorized = bool(cache_authorized)
        self.add_header = add_header
        self.retry_interval = float(retry_interval)
        self._inflight: dict[str, asyncio.Future[Response | None]] = {}
        self._down = False
        self._skip_until = 0.0

    # -- backend interface ---------------------------------------------------------

    async def _lookup(self, key: CacheKey) -> tuple[Any, bytes | None]:
        """``(handle, blob or None)``; ``handle`` goes back to :meth:`_store`."""
        raise NotImplementedError

    async def _store(self, handle: Any, blob: bytes) -> None:
        raise NotImplementedError

    async def _invalidate(self, path: str, query: str | None) -> None:
        raise NotImplementedError

    async def _clear(self) -> None:
        raise NotImplementedError

    async def startup(self) -> None:
        """Connect (the app calls this once per worker on start; idempotent)."""

    async def shutdown(self) -> None:
        """Disconnect (the app calls this on stop; idempotent)."""

    # -- rules ----------------------------------------------------------------------

    def _bypass(self, request: Any) -> bool:
        if request.method not in ("GET", "HEAD"):
            return True
        headers = request.headers
        if "authorization" in headers and not self.cache_authorized:
            return True
        return "no-store" in headers.get("cache-control", "").lower()

    def storable(self, response: Response) -> bool:
        """Whether ``response`` may be stored and shared with other clients."""
        if response.streaming or response.status_code not in CACHEABLE_STATUS:
            return False
        headers = response.headers
        if "set-cookie" in headers:
            return False
        cc = headers.get("cache-control", "").lower()
        if "no-store" in cc or "private" in cc:
            return False
        for value in headers.getall("vary", []):
            for name in value.split(","):
                name = name.strip().lower()
                if name and name not in self.vary:
                    return False
        return True

    def key(self, request: Any) -> CacheKey:
        """The key ``request`` is stored under."""
        credential = request.headers.get("authorization") if self.cache_authorized else None
        return request_key(request, self.vary, credential)

    # -- failures ---------------------------------------------------------------------

    def _failed(self, what: str, exc: BaseException) -> None:
        self._skip_until = time.monotonic() + self.retry_interval
        if not self._down:
            self._down = True
            logger.warning("%s %s failed (%s: %s); serving uncached until it recovers",
                           self.backend, what, type(exc).__name__, exc or "timed out")

    def _ok(self) -> None:
        if self._down:
            self._down = False
            logger.warning("%s is reachable again; caching resumed", self.backend)

    # -- serving ------------------------------------------------------------------------

    async def serve(self, request: Any, call: Callable[[], Awaitable[Response]]) -> Response:
        """Answer from the cache, or run ``call`` (once per key at a time) and store."""
        if self._bypass(request) or (self._down and time.monotonic() < self._skip_until):
            return await call()
        key = self.key(request)
        try:
            handle, blob = await self._lookup(key)
        except Exception as exc:
            self._failed("read", exc)
            return await call()
        self._ok()
        if blob is not None:
            try:
                response = decode_entry(blob)
            except Exception:
                logger.warning("%s: corrupt entry for %s; recomputing", self.backend, key.base)
            else:
                if self.add_header:
                    response.headers["x-cache"] = "HIT"
                return response
        if request.method == "HEAD":
            return await call()
        return await self._compute(key.full, handle, call)

    async def _compute(self, flight: str, handle: Any,
                       call: Callable[[], Awaitable[Response]]) -> Response:
        waiting = self._inflight.get(flight)
        if waiting is not None:  # NOTE: stampede protection: share the first computation
            shared = await asyncio.shield(waiting)
            if shared is None:  # the first one failed or is not shareable: compute ourselves
                return await call()
            response = _copy(shared)
            if self.add_header:
                response.headers["x-cache"] = "HIT"
            return response
        future: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()
        self._inflight[flight] = future
        try:
            response = await call()
        except BaseException:
            future.set_result(None)
            raise
        finally:
            self._inflight.pop(flight, None)
        storable = self.storable(response)
        future.set_result(_copy(response) if storable else None)
        if storable:
            try:
                await self._store(handle, encode_entry(response))
            except Exception as exc:
                self._failed("write", exc)
        if self.add_header and not response.streaming:
            response.headers["x-cache"] = "MISS"
        return response

    # -- invalidation -------------------------------------------------------------------

    async def invalidate(self, path: str, query: str | Mapping[str, Any] | None = None) -> None:
        """Forget ``path`` with any query (``query=None``) or one query, in every variant.

        Never scans keys: remote backends bump a version that is part of the key.
        Errors from the backend propagate (the caller asked for this explicitly).
        """
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        q = None if query is None else canonical_query(query)
        await self._invalidate(canonical_path(path), q)

    async def clear(self) -> None:
        """Forget every entry of this cache (a namespace bump, never ``KEYS``)."""
        await self._clear()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ttl={self.ttl!r})"
