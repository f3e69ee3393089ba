"""A lean HTTP/1.1 client for the providers' one-shot POST (the gateway's hot call).

PERF: through ``aiohttp.ClientSession.post`` a one-shot provider call cost ~40 % of the
gateway's CPU per request (a ``ClientRequest`` and its payload object, a task to write
the body, auto-header merging, timers per read; ``python bench/gateway_cpu.py
--profile``).  This client writes the request in one ``send`` on a pooled keep-alive
connection and reads the reply with a small parser: what aiohttp does for this call,
without the general machinery.

It sends what aiohttp sends (the session's headers, ``Host``, ``Accept: */*`` and
``Content-Type: application/octet-stream`` when the provider sets none, ``Accept-Encoding:
gzip, deflate``, ``Content-Length``) and answers what ``AiohttpAsync.post`` answers:
``(status, headers, body)`` with case-insensitive headers and the body decompressed.
Failures raise aiohttp's own exceptions with aiohttp's messages (``ClientConnectorError``,
``ConnectionTimeoutError``, ``SocketTimeoutError``, ``ServerDisconnectedError``,
``ClientPayloadError``, ``ClientResponseError`` for a reply that is not HTTP), so the
provider maps them as before.  Streams (``open``), proxies and hosts that are not plain
ASCII stay on aiohttp (:func:`lean_for` answers None).
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from typing import Any
from urllib.parse import urlsplit

import aiohttp  # NOTE: loaded by AiohttpAsync only, which needs aiohttp anyway
from aiohttp import hdrs
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy, istr
from yarl import URL

_MAX_HEAD = 64 * 1024  # NOTE: aiohttp's read buffer: a head must end within it
#: An idle connection older than this is closed, not reused (aiohttp's keepalive_timeout
#: in AiohttpAsync): a server closing idle connections races a reuse less often.
KEEPALIVE = 30.0
_MAX_LINE = 8190  # NOTE: aiohttp's max_line_size / max_field_size
#: Known header names in aiohttp's spelling (it answers ``X-Request-ID`` for
#: ``x-request-id``), by their lower case.
_NAMES = {str(v).lower(): v for v in vars(hdrs).values() if isinstance(v, istr)}


def lean_for(base_url: str, headers: dict[str, str], limit: int, ssl: Any) -> H1Pool | None:
    """A :class:`H1Pool` for ``base_url``, or None when aiohttp must do it."""
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or not host.isascii() or \
            parts.username is not None or parts.query or parts.fragment:
        return None
    default = 443 if parts.scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port in (None, default) else f"{shown}:{port}"
    head = [f"Host: {host_header}"]
    names = {k.lower() for k in headers}
    head += [f"{k}: {v}" for k, v in headers.items()]
    if "accept" not in names:
        head.append("Accept: */*")
    if "accept-encoding" not in names:
        head.append("Accept-Encoding: gzip, deflate")
    if "content-type" not in names:
        head.append("Content-Type: application/octet-stream")
    for line in head:
        if "\r" in line or "\n" in line or not line.isascii():
            return None  # NOTE: aiohttp refuses or encodes these: let it
    return H1Pool(host, port or default, parts.scheme == "https", ssl,
                  parts.path.rstrip("/"), "\r\n".join(head), limit)


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.since = 0.0  # NOTE: loop time it went idle
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def more(self, loop: Any, read: float) -> None:
        """Wait for more bytes (or the end); SocketTimeoutError after ``read`` idle s."""
        if self.closed:
            raise aiohttp.ServerDisconnectedError()
        self.waiter = waiter = loop.create_future()
        timer = loop.call_later(read, _idle, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None


def _idle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(aiohttp.SocketTimeoutError("Timeout on reading data from socket"))


class H1Pool:
    """Keep-alive connections to one origin and the POST over them."""

    def __init__(self, host: str, port: int, tls: bool, ssl: Any, path: str, head: str,
                 limit: int) -> None:
        self.host, self.port, self.tls, self.ssl = host, port, tls, ssl
        self.prefix = path
        self.head = head
        self.limit = max(1, limit)
        self.idle: list[_Conn] = []
        self.busy = 0  # NOTE: open connections (idle ones included), at most limit
        self.queue: list[asyncio.Future[None]] = []

    def _reuse(self, now: float) -> _Conn | None:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.since < KEEPALIVE:
                return conn
            self.busy -= 1  # NOTE: the server closed it while it was idle, or it idled too long
            conn.closed = True
            conn.transport.close()
        return None

    async def _acquire(self, loop: Any, connect: float, url: str) -> _Conn:
        conn = self._reuse(loop.time())
        while conn is None and self.busy >= self.limit:
            fut = loop.create_future()
            self.queue.append(fut)
            try:
                await fut
            except BaseException:
                self._wake()  # NOTE: a cancelled waiter passes its turn on
                raise
            conn = self._reuse(loop.time())
        if conn is not None:
            return conn
        self.busy += 1  # NOTE: open connections, idle or in use
        try:
            _t, conn = await asyncio.wait_for(loop.create_connection(
                _Conn, self.host, self.port, ssl=self.ssl if self.tls else None,
                server_hostname=self.host if self.tls else None), connect)
        except BaseException as exc:
            self.busy -= 1
            self._wake()
            mapped = self._connect_error(exc, url)
            if mapped is exc:
                raise  # NOTE: cancelled, or nothing aiohttp would name otherwise
            raise mapped from exc
        return conn

    def _connect_error(self, exc: BaseException, url: str) -> BaseException:
        if isinstance(exc, asyncio.TimeoutError | TimeoutError):
            return aiohttp.ConnectionTimeoutError(f"Connection timeout to host {url}")
        if isinstance(exc, OSError):
            key = ConnectionKey(self.host, self.port, self.tls, self.ssl if self.tls else True,
                                None, None, None, None)
            if isinstance(exc, ssl.SSLCertVerificationError):
                return aiohttp.ClientConnectorCertificateError(key, exc)
            if isinstance(exc, ssl.SSLError):
                return aiohttp.ClientConnectorSSLError(key, exc)
            return aiohttp.ClientConnectorError(key, exc)
        return exc

    def _wake(self) -> None:
        while self.queue:
            fut = self.queue.pop(0)
            if not fut.done():
                fut.set_result(None)
                return

    def _release(self, conn: _Conn, reuse: bool) -> None:
        if reuse and not conn.closed:
            conn.since = asyncio.get_running_loop().time()
            self.idle.append(conn)
        else:
            self.busy -= 1
            conn.closed = True
            if conn.transport is not None:
                conn.transport.close()
        self._wake()

    async def post(self, url: str, path: str, content: bytes, connect: float,
                   read: float, extra: dict[str, str] | None) -> tuple[int, Any, bytes]:
        """POST ``content`` to ``path`` (``url`` in full, for errors):
        ``(status, headers, body)``."""
        loop = asyncio.get_running_loop()
        conn = await self._acquire(loop, connect, url)
        reuse = False
        try:
            head = self.head
            if extra:
                head += "".join(f"\r\n{k}: {v}" for k, v in extra.items())
            conn.buf.clear()
            conn.transport.write(
                f"POST {self.prefix}{path} HTTP/1.1\r\n{head}\r\nContent-Length: "
                f"{len(content)}\r\n\r\n".encode("latin-1") + content)
            status, headers, body, reuse = await _read_reply(conn, loop, read, url)
            return status, headers, body
        finally:
            self._release(conn, reuse)

    async def aclose(self) -> None:
        """Close the idle connections."""
        idle, self.idle = self.idle, []
        for conn in idle:
            self._release(conn, False)


def _bad(message: str, url: str) -> BaseException:
    """What aiohttp raises for a reply that is not HTTP/1.x."""

    info = aiohttp.RequestInfo(URL(url), "POST", CIMultiDictProxy(CIMultiDict()), URL(url))
    return aiohttp.ClientResponseError(info, (), status=400, message=message)


async def _read_reply(conn: _Conn, loop: Any, read: float,
                      url: str) -> tuple[int, Any, bytes, bool]:

    buf = conn.buf
    while True:  # NOTE: 1xx interim replies are skipped, as aiohttp does
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            if len(buf) > _MAX_HEAD:
                raise _bad("Got more than 65536 bytes when reading status line and headers",
                           url)
            await conn.more(loop, read)
            if conn.closed and buf.find(b"\r\n\r\n") < 0:
                raise aiohttp.ServerDisconnectedError()
            end = buf.find(b"\r\n\r\n")
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[:end + 4]
        if len(lines[0]) > _MAX_LINE:
            raise _bad(f"Got more than {_MAX_LINE} bytes when reading status line", url)
        version, _, rest = lines[0].partition(b" ")
        code = rest[:3]
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or \
                not code.isdigit() or rest[3:4] not in (b"", b" "):
            raise _bad(f"Bad status line {bytes(lines[0][:100])!r}", url)
        status = int(code)
        if status >= 200 or status == 101:
            break
    fields = CIMultiDict()
    known = _NAMES
    for line in lines[1:]:
        if len(line) > _MAX_LINE:
            raise _bad(f"Got more than {_MAX_LINE} bytes when reading header line", url)
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name:
            raise _bad(f"Bad header line {bytes(line[:100])!r}", url)
        text = name.decode("utf-8", "surrogateescape")
        fields.add(known.get(text.lower(), text),
                   value.strip(b" \t").decode("utf-8", "surrogateescape"))
    keep = version == b"HTTP/1.1" and "close" not in fields.get("connection", "").lower()
    chunked = "chunked" in fields.get("transfer-encoding", "").lower()
    length = fields.get("content-length")
    if status in (204, 304) or 100 <= status < 200:
        body = b""
    elif chunked:
        body = await _chunks(conn, loop, read, url)
    elif length is not None:
        if not length.isdigit():
            raise _bad(f"Bad Content-Length {length[:40]!r}", url)
        n = int(length)
        while len(buf) < n:
            if conn.closed:
                raise aiohttp.ClientPayloadError(
                    f"Response payload is not completed: <ContentLengthError: 400, message="
                    f"'Not enough data to satisfy content length header.'>. "
                    f"{ConnectionResetError('Connection lost')!r}")
            await conn.more(loop, read)
        body = bytes(buf[:n])
        del buf[:n]
    else:  # NOTE: the body ends when the server closes
        while not conn.closed:
            await conn.more(loop, read)
        body, keep = bytes(buf), False
        buf.clear()
    encoding = fields.get("content-encoding", "").lower().strip()
    if encoding in ("gzip", "deflate") and body:
        try:
            body = zlib.decompress(body, 47) if encoding == "gzip" else _inflate(body)
        except zlib.error as exc:
            raise aiohttp.ClientPayloadError(f"Can not decode content-encoding: {encoding}") \
                from exc
    elif encoding not in ("", "identity"):
        raise aiohttp.ClientPayloadError(f"Can not decode content-encoding: {encoding}")
    return status, CIMultiDictProxy(fields), body, keep and not buf


def _inflate(body: bytes) -> bytes:
    try:
        return zlib.decompress(body)
    except zlib.error:
        return zlib.decompress(body, -15)  # NOTE: raw deflate, as servers often send


async def _chunks(conn: _Conn, loop: Any, read: float, url: str) -> bytes:
    buf = conn.buf
    out = bytearray()

    async def line() -> bytes:
        end = buf.find(b"\r\n")
        while end < 0:
            if conn.closed or len(buf) > _MAX_HEAD:
                raise aiohttp.ClientPayloadError(
                    "Response payload is not completed: <TransferEncodingError: 400, "
                    "message='Not enough data to satisfy transfer length header.'>")
            await conn.more(loop, read)
            end = buf.find(b"\r\n")
        got = bytes(buf[:end])
        del buf[:end + 2]
        return got

    while True:
        size_text = (await line()).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _bad(f"Bad chunk size {size_text[:40]!r}", url) from None
        if size < 0 or not size_text.isalnum():
            raise _bad(f"Bad chunk size {size_text[:40]!r}", url)
        if size == 0:
            while await line():  # NOTE: trailers, up to the empty line
                pass
            return bytes(out)
        while len(buf) < size + 2:
            if conn.closed:
                raise aiohttp.ClientPayloadError(
                    "Response payload is not completed: <TransferEncodingError: 400, "
                    "message='Not enough data to satisfy transfer length header.'>")
            await conn.more(loop, read)
        if buf[size:size + 2] != b"\r\n":
            raise _bad("Chunk not followed by CRLF", url)
        out += buf[:size]
        del buf[:size + 2]
