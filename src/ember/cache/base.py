"""What every route cache does; backends only look up, store and invalidate bytes.

The rules (SPEC §5), in the order :meth:`RouteCache.serve` applies them:

* Only GET and HEAD requests use the cache; HEAD reads GET's entry but never
  writes it (an explicit HEAD handler's empty body must not become GET's answer).
* A request carrying a credential — ``Authorization``, ``Cookie`` or a header an
  auth middleware on the route declares in ``credential_headers`` (see
  :mod:`ember.cache.credentials`) — bypasses the cache unless the cache was built
  with ``per_credential=True``; then a hash of the credentials is part of the key.
* A request with ``Cache-Control: no-store`` bypasses the cache.
* Only complete (non-streaming) responses with status 200, 203 or 204 are stored;
  never one with ``Set-Cookie``, ``Cache-Control: no-store``, ``private`` or
  ``no-cache``, or a ``Vary`` naming a header the cache does not vary on (``vary=[...]``).
* The store decision is taken twice: on the handler's response, and again on the
  response as it leaves the app, after every middleware ran (a session cookie set by
  ``SessionMiddleware``, a ``Cache-Control: private`` or an error added outside the
  cache prevents storing).  What is stored is the handler's response, so headers that
  outer middleware adds per request (rate-limit counters, CORS) are never replayed.
* One computation per key at a time per worker: concurrent misses wait for the
  first one and share its response (only when that response is storable, decided
  as it leaves — a ``Set-Cookie`` or streaming response is never handed to another
  client).
* A backend that fails or is slow (short timeouts) makes the route serve
  uncached: the failure is logged once per outage on logger ``ember.cache``, the
  backend is skipped for ``retry_interval`` seconds, and never causes a 500.
* Responses carry ``x-cache: HIT`` or ``MISS`` (``add_header=False`` turns it off).

The cache runs inside the middleware chain: authentication middleware always runs
before a cached answer is served.  The app calls ``request._leaving(response)``
(set by :meth:`RouteCache.serve`) once the response has left the chain.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson

from ember._redact import redact
from ember.cache.credentials import request_credentials
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
                 per_credential: bool = False, add_header: bool = True,
                 retry_interval: float = 2.0, cache_authorized: bool = False) -> None:
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
        #: cache requests that carry credentials, one entry per credential (hashed);
        #: ``cache_authorized`` is the older name of the same switch
        self.per_credential = bool(per_credential or cache_authorized)
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
        if not self.per_credential and request_credentials(request):
            return True
        return "no-store" in request.headers.get("cache-control", "").lower()

    @staticmethod
    def shareable(response: Response) -> bool:
        """Whether ``response``, as it leaves the app, may be shared with other clients."""
        if response.streaming or response.status_code not in CACHEABLE_STATUS:
            return False
        headers = response.headers
        if "set-cookie" in headers:
            return False
        cc = headers.get("cache-control", "").lower()
        # NOTE: no-cache forbids reuse without revalidation, which this cache never does
        return "no-store" not in cc and "private" not in cc and "no-cache" not in cc

    def storable(self, response: Response) -> bool:
        """Whether ``response`` (the handler's) may be stored and shared with other clients."""
        if not self.shareable(response):
            return False
        for value in response.headers.getall("vary", []):
            for name in value.split(","):
                name = name.strip().lower()
                if name and name not in self.vary:
                    return False
        return True

    def key(self, request: Any) -> CacheKey:
        """The key ``request`` is stored under."""
        credential = None
        if self.per_credential:
            found = request_credentials(request)
            credential = "\x00".join(found) if found else None
        return request_key(request, self.vary, credential)

    # -- failures ---------------------------------------------------------------------

    def _failed(self, what: str, exc: BaseException) -> None:
        self._skip_until = time.monotonic() + self.retry_interval
        if not self._down:
            self._down = True
            logger.warning("%s %s failed (%s: %s); serving uncached until it recovers",
                           self.backend, what, type(exc).__name__,
                           redact(exc) if str(exc) else "timed out")

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
            read_failed = None
        except Exception as exc:
            self._failed("read", exc)
            read_failed = exc
        if read_failed is not None:
            # NOTE: outside the except block, so the handler's own errors are not chained
            # to the cache outage in their tracebacks
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
        return await self._compute(request, key.full, handle, call)

    async def _compute(self, request: Any, flight: str, handle: Any,
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
            self._settle(flight, future, None)
            raise
        if not self.storable(response):
            self._settle(flight, future, None)
        else:
            snapshot = _copy(response)  # NOTE: before outer middleware adds to it
            if getattr(request, "app", None) is not None and hasattr(request, "_leaving"):
                # NOTE: decide when the response leaves the app (see the module doc)
                request._leaving = _Leave(self, flight, handle, snapshot, future,
                                          request._leaving)
            else:  # served outside an app (no middleware can follow): decide now
                await _Leave(self, flight, handle, snapshot, future, None)(response)
        if self.add_header and not response.streaming:
            response.headers["x-cache"] = "MISS"
        return response

    def _settle(self, flight: str, future: asyncio.Future[Response | None],
                shared: Response | None) -> None:
        if self._inflight.get(flight) is future:
            del self._inflight[flight]
        if not future.done():
            future.set_result(shared)

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


class _Leave:
    """The deferred store decision of one computed response (``request._leaving``).

    Called with the response as it leaves the app (``None`` when the request ended in
    an exception or was cancelled): stores the handler's snapshot only when that final
    response is still shareable, and releases the requests waiting on the same key.
    """

    __slots__ = ("cache", "flight", "future", "handle", "outer", "snapshot")

    def __init__(self, cache: RouteCache, flight: str, handle: Any, snapshot: Response,
                 future: asyncio.Future[Response | None], outer: Any) -> None:
        self.cache = cache
        self.flight = flight
        self.handle = handle
        self.snapshot = snapshot
        self.future = future
        self.outer = outer

    async def __call__(self, final: Response | None) -> None:
        try:
            ok = final is not None and self.cache.shareable(final)
            self.cache._settle(self.flight, self.future, self.snapshot if ok else None)
            if ok:
                try:
                    await self.cache._store(self.handle, encode_entry(self.snapshot))
                except Exception as exc:
                    self.cache._failed("write", exc)
        finally:
            if self.outer is not None:
                await self.outer(final)

    def abandon(self) -> None:
        """Release waiters without storing (the request was cancelled)."""
        self.cache._settle(self.flight, self.future, None)
        if self.outer is not None:
            self.outer.abandon()
