"""Response classes.

A plain :class:`Response` holds its whole body and is written with one
``transport.write``.  Streaming responses (``streaming = True``) implement
``stream_to(out)`` against the connection's :class:`~ember.http.protocol.BodyWriter`,
which frames chunks, waits for the transport to drain and raises
``ClientDisconnect`` the moment the peer goes away.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import AsyncIterable, Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from ember import _json
from ember.datastructures import MutableHeaders, encode_header

if TYPE_CHECKING:
    from ember.http.protocol import BodyWriter

_CT_JSON = (b"content-type", b"application/json")


_default = _json.default


#: Serialise with orjson (dataclasses, datetimes, UUIDs, numpy natively); integers beyond
#: 64 bits are written exactly (see :mod:`ember._json`). PERF: an alias, not a wrapper.
json_dumps = _json.dumps
_orjson_dumps = orjson.dumps
_OPT_NON_STR_KEYS = orjson.OPT_NON_STR_KEYS


_COOKIE_DOMAIN = re.compile(r"\.?[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_COOKIE_BAD = re.compile(r"[\x00-\x1f\x7f;]|[^\x00-\x7f]")


def _check_cookie_attr(name: str, value: object) -> None:
    """ValueError naming ``name`` when ``value`` could break out of its attribute."""
    if not isinstance(value, str):
        raise ValueError(f"cookie {name} must be a str, got {type(value).__name__}")
    bad = _COOKIE_BAD.search(value)
    if bad is not None and not (name == "value" and bad.group() == ";"):
        raise ValueError(f"invalid character {bad.group()!r} in cookie {name} {value!r}: "
                         "CR, LF, ';', control characters and non-ASCII are not allowed")


class Response:
    """A response with its whole body known up front."""

    media_type: str | None = None
    charset = "utf-8"
    streaming = False

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: Any = None,
    ) -> None:
        if not isinstance(status_code, int) or not 100 <= status_code <= 599:
            raise ValueError(f"invalid HTTP status code {status_code!r} (must be 100-599)")
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.background = background
        self.body = self.render(content)
        self._headers = MutableHeaders(self._initial_headers(headers))

    def render(self, content: Any) -> bytes:
        """Turn ``content`` into body bytes."""
        if content is None:
            return b""
        if isinstance(content, bytes):
            return content
        if isinstance(content, (bytearray, memoryview)):
            return bytes(content)
        return str(content).encode(self.charset)

    def _initial_headers(self, headers: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
        raw: list[tuple[bytes, bytes]] = []
        has_type = False
        if headers:
            items = getattr(headers, "items", None)
            if items is None:
                raise TypeError("response headers must be a mapping such as a dict, got "
                                f"{type(headers).__name__}")
            for k, v in items():
                pair = encode_header(k, v)
                if pair[0] == b"content-type":
                    has_type = True
                # NOTE: framing fields are checked by the writer against the body
                # (ember.http.writer.app_framing): one that agrees is fine, one that
                # conflicts is an error before anything is sent (issue 23).
                raw.append(pair)
        if not has_type and self.media_type is not None:
            ctype = self.media_type
            if ctype.startswith("text/") and "charset=" not in ctype:
                ctype += f"; charset={self.charset}"
            raw.append((b"content-type", ctype.encode("latin-1")))
        return raw

    @property
    def headers(self) -> MutableHeaders:
        """Mutable response headers (CR/LF/NUL in a name or value raise)."""
        return self._headers

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The ``(name, value)`` byte pairs that go on the wire."""
        return self._headers.raw

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | None = None,
        expires: datetime | str | int | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = "lax",
    ) -> None:
        """Add a ``Set-Cookie`` header (value quoted as RFC 6265 requires).

        Every attribute is checked (issue 23): CR, LF, ``;``, control characters and
        non-ASCII raise ValueError naming the attribute, so no value can add another
        attribute (``path="/; Domain=evil.example"``) or another header.
        """
        from http.cookies import CookieError, SimpleCookie

        _check_cookie_attr("value", value)
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie[key] = value
        except CookieError:
            raise ValueError(f"invalid cookie key {key!r}: use letters, digits and "
                             "!#$%&'*+-.^_`|~") from None
        morsel = cookie[key]
        if max_age is not None:
            if isinstance(max_age, bool) or not isinstance(max_age, int):
                raise ValueError(f"invalid cookie max_age {max_age!r}: must be an int")
            morsel["max-age"] = max_age
        if expires is not None:
            if isinstance(expires, datetime):
                from email.utils import format_datetime  # NOTE: lazy: email.* costs ~9 ms

                morsel["expires"] = format_datetime(expires.astimezone(UTC), usegmt=True)
            elif isinstance(expires, bool) or not isinstance(expires, (int, str)):
                raise ValueError(f"invalid cookie expires {expires!r}: a datetime, an int "
                                 "(seconds from now) or an HTTP date string")
            else:
                if isinstance(expires, str):
                    _check_cookie_attr("expires", expires)
                morsel["expires"] = expires
        if path is not None:
            _check_cookie_attr("path", path)
            morsel["path"] = path
        if domain is not None:
            _check_cookie_attr("domain", domain)
            if not _COOKIE_DOMAIN.fullmatch(domain):
                raise ValueError(f"invalid cookie domain {domain!r}: a host name "
                                 "(letters, digits, '-' and '.')")
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite is not None:
            if not isinstance(samesite, str) or samesite.lower() not in ("strict", "lax", "none"):
                raise ValueError("samesite must be 'strict', 'lax' or 'none'")
            morsel["samesite"] = samesite
        self._headers.add("set-cookie", cookie.output(header="").strip())

    def delete_cookie(self, key: str, path: str = "/", domain: str | None = None) -> None:
        """Expire a cookie on the client."""
        self.set_cookie(key, "", max_age=0, expires=0, path=path, domain=domain)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status_code}>"


class PlainTextResponse(Response):
    """``text/plain; charset=utf-8``."""

    media_type = "text/plain"


class HTMLResponse(Response):
    """``text/html; charset=utf-8``."""

    media_type = "text/html"


class JSONResponse(Response):
    """``application/json`` serialised with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        # PERF: orjson inline (no extra Python frame); the exact path only on its refusal
        try:
            return _orjson_dumps(content, default=_default, option=_OPT_NON_STR_KEYS)
        except TypeError:
            return json_dumps(content)


class RedirectResponse(Response):
    """A redirect (307 by default, so the method and body are kept)."""

    def __init__(
        self,
        url: str,
        status_code: int = 307,
        headers: Mapping[str, str] | None = None,
        background: Any = None,
    ) -> None:
        super().__init__(b"", status_code, headers, background=background)
        self.headers["location"] = quote(str(url), safe=":/%#?=@[]!$&'()*+,;~")


class StreamingResponse(Response):
    """A body produced by an async or sync iterable of ``bytes``/``str`` chunks."""

    streaming = True

    def __init__(
        self,
        content: AsyncIterable[Any] | Iterable[Any],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: Any = None,
    ) -> None:
        super().__init__(None, status_code, headers, media_type, background)
        self.body_iterator = content

    async def _chunks(self) -> AsyncIterable[bytes]:
        it = self.body_iterator
        if isinstance(it, AsyncIterable):
            async for chunk in it:
                yield chunk if isinstance(chunk, bytes) else self._encode(chunk)
        else:
            for chunk in it:
                yield chunk if isinstance(chunk, bytes) else self._encode(chunk)

    def _encode(self, chunk: Any) -> bytes:
        if isinstance(chunk, str):
            return chunk.encode(self.charset)
        if isinstance(chunk, (bytearray, memoryview)):
            return bytes(chunk)
        raise TypeError(f"streaming body chunks must be bytes or str, not {type(chunk).__name__}")

    async def stream_to(self, out: BodyWriter) -> None:
        """Write the head, then every chunk, waiting for the transport to drain."""
        try:
            out.start(self.status_code, self.raw_headers)
            async for chunk in self._chunks():
                if chunk:
                    await out.write(chunk)
        finally:
            await _aclose(self.body_iterator)
        await out.end()


async def _aclose(iterator: Any) -> None:
    """Close a generator early so its ``finally`` runs (client gone, error)."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
        return
    close = getattr(iterator, "close", None)
    if close is not None and inspect.isgenerator(iterator):
        close()


def to_response(result: Any) -> Response:
    """Turn a handler's return value into a Response (SPEC §2)."""
    if isinstance(result, Response):
        return result
    if isinstance(result, (dict, list)):
        return JSONResponse(result)
    if isinstance(result, str):
        return PlainTextResponse(result)
    if isinstance(result, (int, float)):  # bool is an int: any JSON value is a response
        return JSONResponse(result)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Response(bytes(result), media_type="application/octet-stream")
    if result is None or result is Ellipsis:  # NOTE: `...` placeholder bodies, as in the seed
        return Response(None, 204)
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], int):
        resp = to_response(result[0])
        resp.status_code = result[1]
        return resp
    if dataclasses.is_dataclass(result) or hasattr(result, "model_dump") or hasattr(
        type(result), "__struct_fields__"
    ):
        return JSONResponse(result)
    if isinstance(result, AsyncIterable) or inspect.isgenerator(result):
        return StreamingResponse(result)
    if isinstance(result, Coroutine):  # NOTE: a missing `await` (ember._hints)
        from ember._hints import coroutine_returned

        raise coroutine_returned(result)
    raise TypeError(
        f"handler returned {type(result).__name__}; return a Response, dict, list, str, "
        "int, float, bool, bytes, a dataclass/model or None"
    )
