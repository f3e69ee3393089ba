"""What every route cache does; backends only store and fetch bytes.

Rules (SPEC §5): the key is method (HEAD shares GET's entry) + path + sorted
query (+ the values of ``vary`` headers); only GET/HEAD requests and 200/203/
301/308/404/410 responses are stored; never streaming responses, never
responses with ``Set-Cookie``, never when the request or response says
``Cache-Control: no-store``; requests with ``Authorization`` bypass the cache
unless ``cache_authorized=True`` (then the credential, hashed, is part of the
key).  The cache runs inside the middleware chain, so authentication always
runs first.  One computation per key at a time per worker (stampede
protection).  A backend that fails or is slow makes the route serve uncached
(logged once per outage), never a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from ember.exceptions import ConfigError
from ember.responses import Response

logger = logging.getLogger("ember.cache")

CACHEABLE_STATUS = frozenset((200, 203, 301, 308, 404, 410))
_HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"transfer-encoding", b"content-length",
                         b"date", b"server", b"set-cookie", b"x-cache", b"upgrade"))


def encode_entry(response: Response) -> bytes:
    """Status, headers and body in one compact blob."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers
               if k not in _HOP_BY_HOP]
    meta = orjson.dumps({"s": response.status_code, "h": headers})
    return struct.pack("!I", len(meta)) + meta + response.body


def decode_entry(blob: bytes) -> Response:
    """The Response stored by :func:`encode_entry`."""
    (n,) = struct.unpack_from("!I", blob)
    meta = orjson.loads(blob[4:4 + n])
    response = Response(blob[4 + n:], meta["s"])
    raw = response.raw_headers
    raw.clear()
    for k, v in meta["h"]:
        raw.append((k.encode("latin-1"), v.encode("latin-1")))
    return response


class RouteCache:
    """Shared logic; subclasses implement ``_get``, ``_set``, ``_delete``, ``_clear``."""

    #: a human name for logs
    backend = "cache"

    def __init__(self, ttl: float | None = None, *, vary: Sequence[str] = (),
                 cache_authorized: bool = False, prefix: str = "ember:",
                 add_header: bool = True) -> None:
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))
                                or ttl <= 0):
            raise ConfigError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
        if isinstance(vary, str):
            raise ConfigError("vary must be a list of header names, not a string")
        self.ttl = ttl
        self.vary = tuple(h.lower() for h in vary)
        self.cache_authorized = cache_authorized
        self.prefix = prefix
        self.add_header = add_header
        self._inflight: dict[str, asyncio.Future[Response]] = {}
        self._down = False

    # -- backend interface --------------------------------------------------------

    async def _get(self, key: str) -> bytes | None:
        raise NotImplementedError

    async def _set(self, key: str, value: bytes) -> None:
        raise NotImplementedError

    async def _delete(self, key: str) -> None:
        raise NotImplementedError

    async def _clear(self) -> None:
        raise NotImplementedError

    async def startup(self) -> None:
        """Connect (per worker); the app calls this on start."""

    async def shutdown(self) -> None:
        """Disconnect; the app calls this on stop."""

    # -- keys -------------------------------------------------------------------------

    def key_for(self, method: str, path: str, query: str = "",
                vary_values: Sequence[str] = (), credential: str | None = None) -> str:
        """The storage key of a request."""
        pairs = sorted(parse_qsl(query, keep_blank_values=True))
        base = f"GET {path}?{urlencode(pairs)}" if method in ("GET", "HEAD") else \
            f"{method} {path}?{urlencode(pairs)}"
        for name, value in zip(self.vary, vary_values, strict=False):
            base += f"|{name}={value}"
        if credential is not None:
            base += "|auth=" + hashlib.sha256(credential.encode()).hexdigest()[:32]
        return self.prefix + base

    def request_key(self, request: Any) -> str:
        """The storage key of ``request``."""
        credential = request.headers.get("authorization") if self.cache_authorized else None
        return self.key_for(request.method, request.path,
                            request.query_string.decode("latin-1"),
                            [request.headers.get(h, "") for h in self.vary], credential)

    # -- serving ------------------------------------------------------------------------

    def _bypass(self, request: Any) -> bool:
        if request.method not in ("GET", "HEAD"):
            return True
        if "authorization" in request.headers and not self.cache_authorized:
            return True
        cc = request.headers.get("cache-control", "").lower()
        return "no-store" in cc

    @staticmethod
    def storable(response: Response) -> bool:
        """Whether a response may be stored."""
        if response.streaming or response.status_code not in CACHEABLE_STATUS:
            return False
        headers = response.headers
        if "set-cookie" in headers:
            return False
        cc = headers.get("cache-control", "").lower()
        return "no-store" not in cc and "private" not in cc

    def _failed(self, what: str, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            logger.warning("%s %s failed (%s: %s); serving uncached until it recovers",
                           self.backend, what, type(exc).__name__, exc)

    async def serve(self, request: Any, call: Callable[[], Awaitable[Response]]) -> Response:
        """Answer from the cache, or compute once and store."""
        if self._bypass(request):
            return await call()
        key = self.request_key(request)
        try:
            blob = await self._get(key)
        except Exception as exc:
            self._failed("read", exc)
            return await call()
        if self._down:
            self._down = False
            logger.info("%s is back", self.backend)
        if blob is not None:
            try:
                response = decode_entry(blob)
            except Exception:
                logger.warning("%s: corrupt entry for %s; recomputing", self.backend, key)
            else:
                if self.add_header:
                    response.headers["x-cache"] = "HIT"
                return response
        waiting = self._inflight.get(key)
        if waiting is not None:  # NOTE: stampede protection: share the computation
            try:
                return _copy(await asyncio.shield(waiting))
            except Exception:
                return await call()
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            response = await call()
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(
                    "cancelled"))
                future.exception()  # NOTE: mark retrieved; waiters fall back to computing
            raise
        finally:
            self._inflight.pop(key, None)
        if not future.done():
            future.set_result(response)
        if self.storable(response):
            try:
                await self._set(key, encode_entry(response))
            except Exception as exc:
                self._failed("write", exc)
        if self.add_header and not response.streaming:
            response.headers["x-cache"] = "MISS"
        return response

    # -- invalidation -------------------------------------------------------------------

    async def invalidate(self, path: str, query: str | dict[str, Any] = "",
                         method: str = "GET") -> None:
        """Forget the entry of one path + query (without scanning keys)."""
        if isinstance(query, dict):
            query = urlencode(query, doseq=True)
        await self._delete(self.key_for(method, path, query))

    async def clear(self) -> None:
        """Forget every entry of this cache (a namespace bump, never ``KEYS``)."""
        await self._clear()


def _copy(response: Response) -> Response:
    if response.streaming:
        return response
    copy = Response(response.body, response.status_code)
    copy.raw_headers[:] = list(response.raw_headers)
    return copy
