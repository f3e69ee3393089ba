# cython: annotation_typing=False
"""The request a handler sees (pure-Python reference; compiled as ``_request_c``).

Everything is lazy: headers, query, cookies and the body are decoded the first
time someone asks.  The body lives in the request's cycle
(:class:`ember.http.cycle.Cycle`), which the connection feeds; it is consumed
once, either whole (``body()``, ``json()``, ``form()``) or as a stream
(``stream()``).  A body that can never complete (framing error, too large,
body timeout, disconnect) raises from ``body()``/``stream()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson

try:
    import cython
except ImportError:  # pragma: no cover - pure install without Cython
    from ember import _cython_shim as cython

from ember._json import loads as _json_loads
from ember.datastructures import URL, Address, Headers, QueryParams, State
from ember.exceptions import HTTPException

if TYPE_CHECKING:
    from ember.forms import FormData
    from ember.http.cycle import Cycle

_EMPTY_QUERY = QueryParams()


class Request:
    """An HTTP request: method, path, headers, query, body, client and state."""

    __slots__ = (
        "__weakref__",
        "_allowed",
        "_authority",
        "_body",
        "_client",
        "_cookies",
        "_cycle",
        "_form",
        "_headers",
        "_json",
        "_leaving",
        "_path",
        "_peer",
        "_query",
        "_raw_headers",
        "_session",
        "_state",
        "app",
        "http_minor",
        "method",
        "path_params",
        "query_string",
        "raw_path",
        "route",
        "scheme",
        "session_data",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        http_minor: int = 1,
        conn: Any = None,
        peer: tuple[str, int] | None = None,
        scheme: str = "http",
        cycle: Cycle | None = None,
    ) -> None:
        if cycle is None:
            # NOTE: imported here: the compiled Cycle types its ``request`` as this class
            from ember.http.cycle import Cycle

            cycle = Cycle(conn)
        self._fill(method, target, headers, http_minor, peer, scheme, cycle)

    def _fill(self, method: str, target: bytes, headers: list, http_minor: int, peer: Any,
              scheme: str, cycle: Any) -> None:
        """Every attribute, set once (``__init__`` and :func:`new_request` share it)."""
        self.method = method
        self._authority = None
        # PERF: compiled, the scans are memchr calls (bytes.find/in cost ~1-2k
        # instructions each: argument parsing and the generic search)
        if cython.compiled and type(target) is bytes:
            q = _c_find_byte(target, 63)  # noqa: F821 - "?" (the .pxd)
            first = _c_first_byte(target)  # noqa: F821
        else:
            q = target.find(b"?")
            first = target[0] if target else -1
        if q >= 0:
            raw_path = target[:q]
            self.query_string = target[q + 1 :]
        else:
            raw_path = target
            self.query_string = b""
        if first != 47 and target != b"*":  # 47: "/"
            # absolute-form: keep only the path (RFC 9112 §3.2.2)
            from urllib.parse import urlsplit

            parts = urlsplit(raw_path.decode("latin-1"))
            raw_path = (parts.path or "/").encode("latin-1")
            # NOTE: the target's authority wins over Host (RFC 9112 §3.2.2)
            self._authority = parts.netloc.rpartition("@")[2] or None
        if cython.compiled and type(raw_path) is bytes:
            h = _c_find_byte(raw_path, 35)  # noqa: F821 - "#"
        else:
            h = raw_path.find(b"#")
        if h >= 0:
            raw_path = raw_path[:h]
        self.raw_path = raw_path
        self.http_minor = http_minor
        self._raw_headers = headers
        self.path_params = {}
        self.route = None
        self.app = None
        self.scheme = scheme
        self._path = None
        self._headers = None
        self._query = None
        self._cookies = None
        self._client = None
        self._peer = peer
        self._state = None
        # NOTE: the request holds its cycle; the HTTP/1.1 connection links the cycle back
        # only while the request is in flight (no reference cycle for the GC to find).
        self._cycle = cycle
        self._allowed = None
        self._body = None
        self._form = None
        self._json = None
        self.session_data = None
        self._session = None
        # NOTE: a route cache's store decision, taken by the app once the response has
        # left every middleware (ember.cache.base)
        self._leaving = None

    # -- the request line and headers -------------------------------------

    @property
    def path(self) -> str:
        """The percent-decoded path (UTF-8, invalid sequences replaced)."""
        if self._path is None:
            raw = self.raw_path.decode("latin-1")
            self._path = unquote(raw) if "%" in raw else raw
        return self._path

    @property
    def http_version(self) -> str:
        """``"1.1"``, ``"1.0"``, ``"2"`` or ``"3"`` (HTTP/2 and HTTP/3 streams carry
        ``http_minor`` 2 and 3)."""
        minor = self.http_minor
        return f"1.{minor}" if minor < 2 else str(minor)

    @property
    def headers(self) -> Headers:
        """Case-insensitive, multi-valued request headers."""
        if self._headers is None:
            self._headers = Headers(self._raw_headers)
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        """The query string, multi-valued: ``.get(k, default)``, ``.getall(k)``."""
        if self._query is None:
            self._query = QueryParams(self.query_string) if self.query_string else _EMPTY_QUERY
        return self._query

    @property
    def args(self) -> QueryParams:
        """Alias of :attr:`query_params` (the seed's name)."""
        return self.query_params

    @property
    def url(self) -> URL:
        """The full URL the client asked for: scheme, authority (absolute-form target, else
        Host) and target — a ``str`` with ``.scheme .netloc .hostname .port .path .query``.

        PERF: built on each read, never per request (``URL.build`` is the one constructor).
        """
        host = self._authority or self.headers.get("host") or "localhost"
        return URL.build(self.scheme, host, self.raw_path.decode("latin-1"),
                         self.query_string.decode("latin-1"))

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies sent by the client; malformed pairs are skipped, never fatal."""
        if self._cookies is None:
            cookies: dict[str, str] = {}
            for header in self.headers.getall("cookie"):
                for chunk in header.split(";"):
                    name, sep, value = chunk.partition("=")
                    name = name.strip()
                    if not sep or not name:
                        continue
                    value = value.strip()
                    if len(value) >= 2 and value[0] == value[-1] == '"':
                        try:
                            parsed = SimpleCookie()
                            parsed.load(f"{name}={value}")
                            value = parsed[name].value
                        except (CookieError, KeyError):  # NOTE: not a cookie-octet value
                            continue
                    cookies.setdefault(name, value)
            self._cookies = cookies
        return self._cookies

    @property
    def client(self) -> Address | None:
        """The peer address; forwarding headers count only from trusted proxies."""
        if self._client is None and self._peer is not None:
            app = self.app
            trusted = getattr(app, "trusted_proxies", None) if app else None
            if trusted:
                from ember.proxies import client_address

                header = getattr(app, "forwarded_header", "x-forwarded-for")
                self._client = client_address(self._peer, self.headers, trusted, header)
            else:
                self._client = Address(self._peer[0], self._peer[1])
        return self._client

    @property
    def state(self) -> State:
        """Per-request attribute bag for middleware and handlers; it starts as a copy of
        the dict the app's lifespan yielded, if any (as in Starlette)."""
        if self._state is None:
            self._state = State(getattr(self.app, "_lifespan_state", None))
        return self._state

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased (``""`` when absent)."""
        ctype = self.headers.get("content-type", "")
        return ctype.split(";", 1)[0].strip().lower()

    @property
    def session(self) -> Any:
        """The session (dict-like); needs ``SessionMiddleware``."""
        if self._session is None:
            raise RuntimeError("request.session needs app.add_middleware(SessionMiddleware(...))")
        return self._session

    # -- the body (a view on the cycle) ---------------------------------------------
    # NOTE: the request only reads its body; every transport (HTTP/1.1, HTTP/2, HTTP/3,
    # the ASGI adapter) feeds it through the cycle: feed / finish / fail_body / lost
    # (ember.http.sink, step 2).

    def _upgrade(self, upgrade: Any) -> Any:
        """Leave HTTP: the transport acts on ``upgrade`` (:meth:`ember.http.sink.Sink.upgrade`)."""
        return self._cycle.conn.upgrade(self._cycle, upgrade)

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield body chunks as they arrive (one-shot).

        Raises :class:`~ember.exceptions.ClientDisconnect` when the client leaves
        and :class:`~ember.exceptions.HTTPException` (400 framing error, 408 body
        timeout, 413 too large) when the body can never complete.
        """
        if self._body is not None:
            if self._body:
                yield self._body
            return
        cycle = self._cycle
        if cycle.stream_used:
            raise RuntimeError("the request body stream was already consumed")
        cycle.stream_used = True
        read = cycle.read
        while True:
            chunk = await read()
            if not chunk:
                return
            yield chunk

    async def body(self) -> bytes:
        """The whole body as bytes (cached); raises like :meth:`stream`."""
        if self._body is None:
            # PERF: the common case (body already received) never suspends.
            body = self._cycle.take_all()
            if body is None:
                body = b"".join([c async for c in self.stream()])
            self._body = body
        return self._body

    async def json(self) -> Any:
        """The body parsed as JSON; invalid JSON is a 400 that says where."""
        if self._json is None:
            body = await self.body()
            try:
                self._json = _json_loads(body)
            except orjson.JSONDecodeError as exc:
                raise HTTPException(400, f"invalid JSON body: {exc}") from None
        return self._json

    async def form(self, **limits: Any) -> FormData:
        """Parse an urlencoded or multipart body; big files spool to disk."""
        if self._form is None:
            from ember.forms import parse_form

            self._form = await parse_form(self, **limits)
        return self._form

    async def is_disconnected(self) -> bool:
        """True once the client has closed the connection."""
        return self._cycle.disconnected

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.raw_path.decode('latin-1')!r}>"


def new_request(method: str, target: bytes, headers: list, http_minor: int, peer: Any,
                scheme: str, cycle: Any, app: Any, router: Any) -> Request:
    """The HTTP/1.1 connection's constructor: a :class:`Request` routed by ``router``.

    Equivalent to ``Request(method, target, headers, http_minor, None, peer, scheme,
    cycle)`` followed by ``Ember._resolve`` (``app`` set, ``route`` and ``path_params``
    on a match, the allowed methods remembered on a miss).  PERF: compiled, it skips
    ``__init__``'s argument parsing (a freelist object filled as a C struct) and calls
    the compiled router directly.
    """
    req = Request.__new__(Request)
    req._fill(method, target, headers, http_minor, peer, scheme, cycle)
    req.app = app
    route, params = router.match_request(method, req.raw_path)
    if route is not None:
        req.route = route
        req.path_params = params
    else:
        req._allowed = params or ()
    return req
